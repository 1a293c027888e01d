"""The `text` source: documents from a CSV / Parquet / JSON Lines column, a folder of .txt files (class = first
sub-folder), or the built-in generated corpus, as bag-of-words counts.

Ingest reads every document once into `raw.parquet` (id, label, text, and why a row is unusable: not UTF-8, or
empty). Preprocessing first fits the vocabulary on the train split only (scikit-learn's CountVectorizer: size,
minimum and maximum document frequency and stop words from `dataset.text`), writes it into a plan of its own, and
then each Dask worker turns its documents into count vectors over that fixed vocabulary. The dataset table stores
the counts as a dense uint16 vector (LZ4 makes the zeros nearly free on disk; see docs/text.md, "Storage") and a
short `text_preview` column that latent tables carry on for analysts.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from latent.config import SplitConfig, stable_hash
from latent.data.dataset import split_of
from latent.data.sources.base import (
    RAW_FILE,
    Plan,
    Rows,
    Source,
    class_codes,
    matching_files,
    register_source,
    write_raw_table,
)
from latent.errors import DataError
from latent.workspace import atomic_write_text

PREVIEW_CHARS = 200
TABLE_SUFFIXES = (".csv", ".parquet", ".pq", ".jsonl", ".json", ".ndjson")

# ---- the built-in corpus: documents generated from topic word lists (nothing downloaded) -----------------------

TOPIC_WORDS: dict[str, list[str]] = {
    "space": [
        "planet",
        "orbit",
        "rocket",
        "star",
        "galaxy",
        "telescope",
        "astronaut",
        "moon",
        "comet",
        "asteroid",
        "satellite",
        "launch",
        "gravity",
        "nebula",
        "cosmos",
        "solar",
        "mars",
        "jupiter",
        "spacecraft",
        "mission",
    ],
    "cooking": [
        "recipe",
        "oven",
        "flour",
        "butter",
        "sugar",
        "garlic",
        "onion",
        "sauce",
        "bake",
        "roast",
        "pepper",
        "salt",
        "dough",
        "simmer",
        "kitchen",
        "chef",
        "spice",
        "tomato",
        "cheese",
        "soup",
    ],
    "finance": [
        "market",
        "stock",
        "bond",
        "investor",
        "bank",
        "interest",
        "inflation",
        "dividend",
        "portfolio",
        "price",
        "trading",
        "equity",
        "currency",
        "loan",
        "credit",
        "profit",
        "revenue",
        "fund",
        "asset",
        "economy",
    ],
    "medicine": [
        "patient",
        "doctor",
        "disease",
        "vaccine",
        "hospital",
        "symptom",
        "treatment",
        "clinical",
        "therapy",
        "virus",
        "infection",
        "diagnosis",
        "surgery",
        "nurse",
        "drug",
        "dose",
        "immune",
        "chronic",
        "blood",
        "heart",
    ],
    "music": [
        "guitar",
        "melody",
        "concert",
        "album",
        "singer",
        "piano",
        "rhythm",
        "band",
        "chorus",
        "orchestra",
        "song",
        "lyrics",
        "drum",
        "jazz",
        "violin",
        "tempo",
        "harmony",
        "stage",
        "tour",
        "record",
    ],
    "computing": [
        "software",
        "code",
        "compiler",
        "server",
        "database",
        "algorithm",
        "network",
        "processor",
        "memory",
        "python",
        "kernel",
        "program",
        "bug",
        "debug",
        "cloud",
        "laptop",
        "keyboard",
        "linux",
        "binary",
        "cache",
    ],
    "weather": [
        "rain",
        "storm",
        "wind",
        "cloud",
        "forecast",
        "snow",
        "temperature",
        "humidity",
        "thunder",
        "sunny",
        "flood",
        "hurricane",
        "frost",
        "breeze",
        "drought",
        "climate",
        "tornado",
        "fog",
        "hail",
        "season",
    ],
    "football": [
        "goal",
        "match",
        "team",
        "player",
        "coach",
        "league",
        "referee",
        "striker",
        "stadium",
        "penalty",
        "season",
        "score",
        "tackle",
        "midfield",
        "keeper",
        "fans",
        "transfer",
        "tournament",
        "pitch",
        "champion",
    ],
}
FILLER_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "it",
    "was",
    "for",
    "on",
    "are",
    "with",
    "as",
    "be",
    "at",
    "by",
    "this",
    "have",
    "from",
    "or",
    "had",
    "not",
    "but",
    "what",
    "all",
    "were",
    "when",
    "we",
    "there",
    "can",
    "an",
    "your",
    "which",
    "their",
    "said",
    "if",
    "do",
    "will",
    "each",
    "about",
    "how",
    "up",
    "out",
    "them",
    "then",
    "she",
    "many",
    "some",
    "so",
    "these",
    "would",
    "other",
    "into",
    "has",
    "more",
    "her",
    "two",
    "like",
    "him",
    "see",
    "time",
    "could",
    "no",
    "make",
    "than",
    "first",
    "been",
    "its",
    "who",
    "now",
    "people",
    "my",
    "made",
    "over",
    "did",
    "down",
    "only",
    "way",
    "find",
    "use",
    "may",
    "water",
    "long",
    "little",
    "very",
    "after",
    "words",
    "called",
    "just",
    "where",
    "most",
    "know",
    "get",
    "through",
    "back",
    "much",
    "go",
    "good",
    "new",
    "write",
    "our",
    "used",
    "me",
    "man",
    "too",
    "any",
    "day",
    "same",
    "right",
    "look",
    "think",
    "also",
    "around",
    "another",
    "came",
    "come",
    "work",
    "three",
    "word",
    "must",
    "because",
    "does",
    "part",
    "even",
    "place",
    "well",
    "such",
    "here",
    "take",
    "why",
    "help",
    "put",
    "different",
    "away",
    "again",
    "off",
    "went",
    "old",
    "number",
    "great",
    "tell",
    "men",
    "say",
    "small",
    "every",
    "found",
    "still",
    "between",
    "name",
    "should",
    "home",
    "big",
    "give",
    "air",
    "line",
    "set",
    "own",
    "under",
    "read",
    "last",
    "never",
    "us",
    "left",
    "end",
    "along",
    "while",
    "might",
    "next",
    "sound",
    "below",
    "saw",
    "something",
    "thought",
    "both",
    "few",
    "those",
    "always",
    "show",
    "large",
    "often",
    "together",
    "asked",
    "house",
    "world",
    "going",
    "want",
    "school",
    "important",
    "until",
    "form",
    "food",
    "keep",
    "children",
    "feet",
    "land",
    "side",
    "without",
    "boy",
    "once",
    "animal",
    "life",
    "enough",
    "took",
    "sometimes",
    "four",
    "head",
    "above",
    "kind",
    "began",
    "almost",
    "live",
    "page",
    "got",
    "earth",
    "need",
    "far",
    "hand",
    "high",
    "year",
    "mother",
    "light",
    "country",
    "father",
]


# General words of running text that survive stop-word removal (no topic or filler word, none in scikit-learn's
# English stop-word list), most frequent first: the background vocabulary every real corpus has.
_GENERAL = """
thing woman child state family student group problem case week company question government night point room
area money story fact month lot study book eye job business issue service friend power hour game member law car
city community president minute idea kid body information parent face level office door health person art war
history party result change morning reason research girl guy moment teacher force education ask feel try leave
early young public bad able best better sure free true real local late hard major clear possible according
report news told today yesterday million percent plan official national support including recent making working
getting started based included open hold turn start play following given
"""
GENERAL_WORDS = _GENERAL.split()


def generate_corpus(n: int, seed: int, background: float = 0.0) -> tuple[list[str], list[int]]:
    """n documents drawn as LDA assumes (topic mixture ~ Dirichlet(0.3), then words), with filler words between
    (35 % of words) and a `background` share of words from GENERAL_WORDS (Zipf, exponent 1), as running text has;
    each labelled with its dominant topic (the index into TOPIC_WORDS). `background` 0 is LDA's exact model."""
    rng = np.random.default_rng(seed)
    topics = list(TOPIC_WORDS.values())
    zipf = [np.arange(1, len(t) + 1) ** -0.8 for t in topics]
    zipf = [w / w.sum() for w in zipf]
    general = 1.0 / np.arange(1, len(GENERAL_WORDS) + 1)
    general /= general.sum()
    docs, labels = [], []
    for _ in range(n):
        theta = rng.dirichlet(np.full(len(topics), 0.3))
        length = 30 + rng.poisson(50)
        words = []
        for _ in range(length):
            u = rng.random()
            if u < 0.35:
                words.append(FILLER_WORDS[rng.integers(len(FILLER_WORDS))])
            elif u < 0.35 + background:
                words.append(GENERAL_WORDS[rng.choice(len(GENERAL_WORDS), p=general)])
            else:
                k = rng.choice(len(topics), p=theta)
                words.append(topics[k][rng.choice(len(topics[k]), p=zipf[k])])
        docs.append(" ".join(words).capitalize() + ".")
        labels.append(int(np.argmax(theta)))
    return docs, labels


# ---- reading documents -------------------------------------------------------------------------------------------


def _decode(data: bytes | None, where: str) -> tuple[str | None, str | None]:
    """(text, problem): the UTF-8 text of a document, or why it is not usable."""
    if data is None:
        return None, f"{where}: empty document (no text)"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"{where}: not UTF-8 text (byte 0x{data[exc.start]:02x} at position {exc.start})"
    if not text.strip():
        return None, f"{where}: empty document (no text)"
    return text, None


def _table_documents(path: Path, column: str, label: str | None) -> tuple[list, list, list]:
    """(texts as bytes or None, labels, row names) of one CSV, Parquet or JSON Lines file."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        texts, labels = [], []
        with open(path, "rb") as fh:
            for n, line in enumerate(fh):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line.decode("utf-8"))
                except UnicodeDecodeError:
                    texts.append(line.rstrip(b"\r\n"))  # refused as not UTF-8 (or skipped), like any document
                    labels.append(None)
                    continue
                except ValueError:
                    raise DataError(f"{path}: line {n + 1} is not a JSON object") from None
                if not isinstance(record, dict) or column not in record:
                    raise DataError(f"{path}: line {n + 1} has no field {column!r} (dataset.text.column)")
                value = record[column]
                texts.append(value.encode() if isinstance(value, str) else None)
                labels.append(record.get(label) if label else None)
        return texts, labels, [f"line {i + 1}" for i in range(len(texts))]
    try:
        if suffix == ".csv":
            import pyarrow.csv as pacsv

            # read the documents as bytes, so that one non-UTF-8 row is that row's problem, not the whole file's
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types={column: pa.binary()}))
        else:
            table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: cannot be read ({' '.join(str(exc).split())[:200]})") from None
    if column not in table.column_names:
        raise DataError(f"{path}: no text column {column!r} (dataset.text.column); columns: {table.column_names}")
    if label and label not in table.column_names:
        raise DataError(f"{path}: no label column {label!r} (dataset.text.label)")
    values = table.column(column)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        values = values.cast(pa.binary())
    if not pa.types.is_binary(values.type):
        raise DataError(f"{path}: text column {column!r} holds {values.type}, not text")
    texts = values.to_pylist()
    labels = table.column(label).to_pylist() if label else [None] * len(texts)
    return texts, labels, [f"row {i}" for i in range(len(texts))]


@register_source
class TextSource(Source):
    name = "text"

    def _opts(self):
        return self.cfg.text

    def _files(self) -> tuple[Path | None, list[Path]]:
        """(folder of .txt files or None, the files)."""
        if not self.cfg.path:
            return None, []
        root = Path(os.path.expanduser(self.cfg.path))
        if root.is_dir():
            files = sorted(p for p in root.rglob("*.txt") if not any(part.startswith(".") for part in p.parts))
            if not files:
                raise DataError(f"dataset.path {root}: the folder holds no .txt files")
            return root, files
        files = matching_files(self.cfg.path, "text files")
        for f in files:
            if f.suffix.lower() not in TABLE_SUFFIXES:
                raise DataError(f"{f}: expected a .csv, .parquet or .jsonl file, or a folder of .txt files")
        return None, files

    def fingerprint(self) -> str:
        options = self._opts().model_dump()
        if not self.cfg.path:
            return stable_hash({"source": "text", "builtin": 1, **options})
        root, files = self._files()
        stats = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
        return stable_hash({"files": stats, "options": options, "root": str(root)})

    def _documents(self) -> tuple[list[str], list, list[bytes | None], list[str]]:
        """(ids, labels, texts as bytes, where each came from) of every document."""
        opts = self._opts()
        root, files = self._files()
        if not self.cfg.path:
            docs, labels = generate_corpus(opts.n_documents, opts.seed, opts.background)
            ids = [f"text-{i:05d}" for i in range(len(docs))]
            return ids, labels, [d.encode() for d in docs], ids
        if root is not None:
            ids, labels, texts = [], [], []
            for f in files:
                rel = f.relative_to(root)
                ids.append(str(rel))
                labels.append(rel.parts[0] if len(rel.parts) > 1 else None)
                data = f.read_bytes()
                texts.append(data if data.strip() else None)
            return ids, labels, texts, [str(f) for f in files]
        ids, labels, texts, where = [], [], [], []
        for f in files:
            t, lab, names = _table_documents(f, opts.column, opts.label)
            digest = hashlib.sha1(str(f.resolve()).encode()).hexdigest()[:8]
            ids += [f"{f.stem}-{digest}-{i:08d}" for i in range(len(t))]
            texts += t
            labels += lab
            where += [f"{f}: {n}" for n in names]
        return ids, labels, texts, where

    def plan(self, raw_dir: Path, shard_rows: int) -> Plan:
        ids, labels, texts, where = self._documents()
        if not ids:
            raise DataError(f"dataset.path {self.cfg.path}: no documents")
        decoded, problems = [], []
        for data, place in zip(texts, where, strict=True):
            text, problem = _decode(data, place)
            if problem and self._opts().on_bad_file == "error":
                raise DataError(f"{problem} (set dataset.text.on_bad_file: skip to leave it out)")
            decoded.append(text)
            problems.append(problem)
        codes, classes = class_codes(labels)
        table = pa.table(
            {
                "id": pa.array(ids, pa.string()),
                "label": pa.array(codes, pa.int64()),
                "text": pa.array(decoded, pa.string()),
                "problem": pa.array(problems, pa.string()),
            }
        )
        partitions = write_raw_table(table, raw_dir, shard_rows)
        # the vocabulary (and so the width) is fitted at preprocessing, on the train split
        return Plan(partitions, (0, 1, 0), 1.0, len(ids), {"raw": RAW_FILE, "classes": classes})

    def fit_on_train(self, plan_file: Path, split: SplitConfig) -> Path:
        """Fit the vocabulary on the train split's documents and write the plan the workers read (beside the
        ingest plan, named by the split, so it is fitted once per split)."""
        from sklearn.feature_extraction.text import CountVectorizer

        opts = self._opts()
        plan = json.loads(plan_file.read_text())
        fitted = plan_file.with_name(f"{plan_file.stem}-vocabulary-{stable_hash(split.model_dump())[:8]}.json")
        if fitted.is_file():
            return fitted
        raw = pq.read_table(plan_file.parent / plan["info"]["raw"], columns=["id", "text", "problem"])
        train = [
            t
            for i, t, p in zip(*(raw.column(c).to_pylist() for c in ("id", "text", "problem")), strict=True)
            if p is None and split_of(i, split) == "train"
        ]
        if not train:
            raise DataError(f"{self.cfg.path or 'the built-in corpus'}: no usable train documents to fit a vocabulary")
        vectorizer = CountVectorizer(
            max_features=opts.vocab_size,
            min_df=min(opts.min_df, len(train)),
            max_df=opts.max_df,
            stop_words=opts.stop_words,
            token_pattern=opts.token_pattern,
        )
        try:
            vectorizer.fit(train)
        except ValueError as exc:  # e.g. every word is a stop word, below min_df or above max_df
            raise DataError(f"{self.cfg.path or 'text'}: no vocabulary from the train split ({exc})") from None
        vocabulary = [str(w) for w in vectorizer.get_feature_names_out()]
        plan["info"]["vocabulary"] = vocabulary
        plan["geometry"] = [0, 1, len(vocabulary)]
        atomic_write_text(fitted, json.dumps(plan))
        return fitted

    def read(self, partition: list[int]) -> Rows:
        from sklearn.feature_extraction.text import CountVectorizer

        vocabulary = self.plan_info["vocabulary"]
        table = pq.ParquetFile(self.raw_path).read_row_groups(partition)
        ids, labels, texts, problems = (table.column(c).to_pylist() for c in ("id", "label", "text", "problem"))
        keep = [n for n, p in enumerate(problems) if p is None]
        skipped = [(ids[n], problems[n]) for n in range(len(ids)) if problems[n] is not None]
        opts = self._opts()
        vectorizer = CountVectorizer(
            vocabulary=vocabulary, stop_words=opts.stop_words, token_pattern=opts.token_pattern
        )
        kept = [texts[n] for n in keep]
        # uint16 counts (a word more than 65,535 times in one document is clipped): read back 12x faster than
        # float32 rows at 5,000 words (benchmarks/text.py --storage), the same values once on the device
        counts = vectorizer.transform(kept) if kept else None
        x = (
            np.minimum(counts.toarray(), np.iinfo(np.uint16).max).astype(np.uint16)
            if counts is not None
            else np.zeros((0, len(vocabulary)), np.uint16)
        )
        previews = np.array([" ".join(t.split())[:PREVIEW_CHARS] for t in kept], dtype=str)
        label_array = pa.array([labels[n] for n in keep], pa.int64())
        return Rows([ids[n] for n in keep], x, label_array, {"text_preview": previews}, skipped)
