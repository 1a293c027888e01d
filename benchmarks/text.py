"""Text: ProdLDA against scikit-learn's LDA in one `latent run`, and how to store bag-of-words counts.

    python benchmarks/text.py [--workspace DIR] [--threads 1] [--backgrounds 0.1,0] [--seeds 0] [--set key=value ...]
    python benchmarks/text.py --docstrings [--seeds 0,1,2]                   # real text: this Python's docstrings
    python benchmarks/text.py --storage                                                 # the storage measurement

The comparison runs conf/text-prodlda.yaml on the built-in corpus once per `--backgrounds` share of general words
(0.1, the preset's corpus, and 0, LDA's exact generative process) and prints each report's held-out perplexity and
NPMI coherence of both models (same topics count, same split, same top-10 words rule; NPMI on all documents and on
the held-out ones) and the NPMI of the corpus's true topics. With `--set dataset.path=...` it runs once, on that corpus.
`--seeds` repeats each run with those `train.seed` values.

`--docstrings` builds a real-text corpus with nothing downloaded: one .txt document per module of this interpreter's
site-packages (the docstrings of the module, its classes and its functions; test modules skipped; modules with fewer
than 50 words of docstrings or the same text as another dropped), then runs the preset on that folder. The corpus
depends on what is installed: the count is printed.

The storage measurement writes the counts of two corpora as Parquet (LZ4, as the dataset table is written) in four
forms: dense float32 rows (what the dataset table stores), dense uint8 rows (counts clipped at 255), dense uint16
rows, and sparse rows (a list of word indices and a list of counts per document). It prints each form's size on disk,
write time, read-back time (into the dense float32 matrix a model trains on) and the rows per second a ProdLDA
training pass reaches when each batch is read in that form. Corpora: the built-in corpus (3,000 documents, its
train-split vocabulary) and a generated one of 20,000 documents over 5,000 words (50 topics, LDA's generative
process with Dirichlet(0.1) mixtures, 80 words a document on average).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.faults import run_preset  # noqa: E402

FAST = ["report.disentanglement=false", "report.tsne_iterations=300"]


def compare(workspace: Path, threads: int, sets: list[str], backgrounds: list[float], seeds: list[int]) -> None:
    """One `latent run` of the preset per background share of the built-in corpus (or one run on the corpus that
    `sets` names) and train seed, each printing both models' figures from its report."""
    own_corpus = any(x.startswith(("dataset.path=", "dataset.source=")) for x in sets)
    for background, seed in itertools.product([None] if own_corpus else backgrounds, seeds):
        where = workspace if background is None else workspace / f"background-{background:g}"
        extra = [f"train.seed={seed}"] + ([] if background is None else [f"dataset.text.background={background:g}"])
        where.mkdir(parents=True, exist_ok=True)
        m, seconds = run_preset("text-prodlda", where, threads, [*FAST, *extra, *sets])
        corpus = "your corpus" if background is None else f"the built-in corpus, background {background:g}"
        print(
            f"\ntext-prodlda on {corpus}, train seed {seed}: latent run {seconds:.0f} s, "
            f"{m['text_heldout_documents']:.0f} held-out documents"
        )
        print(f"  {'':<18} {'NPMI, all documents':>20} {'NPMI, held-out':>15} {'perplexity (held-out)':>22}")
        for name, label in (("prodlda", "ProdLDA"), ("lda", "scikit-learn LDA")):
            npmi, heldout = m[f"text_npmi_{name}"], m[f"text_npmi_heldout_{name}"]
            print(f"  {label:<18} {npmi:>20.3f} {heldout:>15.3f} {m[f'text_perplexity_{name}']:>22.1f}")
        if background is not None:
            truth, truth_heldout = true_topics_npmi(where, int(m["text_heldout_documents"]), background)
            print(
                f"  {'the 8 true topics':<18} {truth:>20.3f} {truth_heldout:>15.3f}  (each list's 10 most probable words)"
            )
    print(f"\nworkspace: {workspace}  (OMP_NUM_THREADS={threads})")


def docstring_corpus(folder: Path, min_words: int = 50) -> int:
    """Write one .txt file per module of this interpreter's site-packages holding the docstrings of the module, its
    classes and its functions (test modules skipped; fewer than min_words words, or a text seen before, dropped).
    Returns the number of documents."""
    import ast
    import hashlib
    import sysconfig

    folder.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    for module in sorted(Path(sysconfig.get_paths()["purelib"]).rglob("*.py")):
        if "tests" in module.parts or module.name.startswith("test"):
            continue
        try:
            tree = ast.parse(module.read_text("utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        text = "\n\n".join(d for node in ast.walk(tree) if isinstance(node, kinds) and (d := ast.get_docstring(node)))
        digest = hashlib.sha256(text.encode()).hexdigest()
        if len(text.split()) < min_words or digest in seen:
            continue
        seen.add(digest)
        (folder / f"{len(seen):06d}.txt").write_text(text, "utf-8")
    return len(seen)


def true_topics_npmi(workspace: Path, heldout: int, background: float) -> tuple[float, float]:
    """NPMI of the corpus's own eight topics (each word list's 10 most probable words, Zipf order, that are in the
    run's vocabulary) by the report's function on all the run's documents and on its test documents: the score of
    the generating truth."""
    from sklearn.feature_extraction.text import CountVectorizer

    from latent.analysis.topics import npmi_coherence
    from latent.config import SplitConfig
    from latent.data.dataset import split_of
    from latent.data.sources.text import TOPIC_WORDS, generate_corpus

    (vocab_file,) = sorted((workspace / "datasets").glob("*/vocabulary.json"), key=lambda p: p.stat().st_mtime)[-1:]
    vocabulary = json.loads(vocab_file.read_text())
    docs, _ = generate_corpus(3000, 0, background)
    test = [d for i, d in enumerate(docs) if split_of(f"text-{i:05d}", SplitConfig()) == "test"]
    if len(test) != heldout:
        raise SystemExit(f"true topics: {len(test)} test documents rebuilt, the report had {heldout}")
    vectorizer = CountVectorizer(vocabulary=vocabulary)
    index = {w: i for i, w in enumerate(vocabulary)}
    top = np.array([[index[w] for w in words if w in index][:10] for words in TOPIC_WORDS.values()])
    every, held_out = (vectorizer.transform(d).toarray() for d in (docs, test))
    return float(npmi_coherence(top, every).mean()), float(npmi_coherence(top, held_out).mean())


# ---- storage -----------------------------------------------------------------------------------------------------


def builtin_counts() -> np.ndarray:
    from sklearn.feature_extraction.text import CountVectorizer

    from latent.data.sources.text import generate_corpus

    docs, _ = generate_corpus(3000, 0, 0.1)
    return CountVectorizer(max_features=2000, min_df=2, stop_words="english").fit_transform(docs).toarray()


def generated_counts(n: int = 20000, vocab: int = 5000, topics: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    beta = rng.dirichlet(np.full(vocab, 0.02), size=topics)
    theta = rng.dirichlet(np.full(topics, 0.1), size=n)
    lengths = 40 + rng.poisson(40, n)
    out = np.zeros((n, vocab), np.int64)
    for i in range(n):
        p = theta[i] @ beta
        out[i] = rng.multinomial(lengths[i], p / p.sum())
    return out


def _forms(counts: np.ndarray):
    import pyarrow as pa

    from latent.data.arrow import vectors_to_binary

    def dense(dtype):
        def write(c):
            if dtype != np.float32:
                c = np.minimum(c, np.iinfo(dtype).max)  # clipped: exact only while every count fits
            return pa.table({"x": vectors_to_binary(c.astype(dtype))})

        def read(t):
            col = t.column("x").combine_chunks()
            buf = np.frombuffer(col.buffers()[1], dtype=dtype, count=len(col) * counts.shape[1])
            return buf.reshape(len(col), counts.shape[1]).astype(np.float32)

        return write, read

    def sparse_write(c):
        rows, cols = np.nonzero(c)
        offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(c)))]).astype(np.int32)
        index = pa.ListArray.from_arrays(pa.array(offsets), pa.array(cols.astype(np.uint16)))
        values = pa.ListArray.from_arrays(pa.array(offsets), pa.array(c[rows, cols].astype(np.uint16)))
        return pa.table({"index": index, "count": values})

    def sparse_read(t):
        index, values = t.column("index").combine_chunks(), t.column("count").combine_chunks()
        offsets = index.offsets.to_numpy()
        rows = np.repeat(np.arange(len(index)), np.diff(offsets))
        out = np.zeros((len(index), counts.shape[1]), np.float32)
        out[rows, index.values.to_numpy()] = values.values.to_numpy()
        return out

    return {
        "dense float32": dense(np.float32),
        "dense uint16": dense(np.uint16),
        "dense uint8": dense(np.uint8),
        "sparse uint16": (sparse_write, sparse_read),
    }


def storage(workdir: Path) -> None:
    import pyarrow.parquet as pq
    import torch

    from latent.models.prodlda import ProdLDA, ProdLDAConfig

    torch.set_num_threads(1)
    for name, counts in (("built-in corpus", builtin_counts()), ("generated 20k x 5k", generated_counts())):
        nonzero = np.count_nonzero(counts) / counts.size
        print(
            f"\n{name}: {counts.shape[0]} documents x {counts.shape[1]} words, {nonzero:.1%} non-zero, max count {counts.max()}"
        )
        print(f"  {'form':<14} {'MB on disk':>10} {'write s':>8} {'read s':>7} {'train rows/s':>13}  exact")
        model = ProdLDA(ProdLDAConfig(input_dim=counts.shape[1], latent_dim=50))
        (opt,) = model.configure_optimizers(0.002, 0.0)
        model.train()
        for s in range(0, 640, 64):  # warm-up steps, so that the first form measured is not the slowest
            model.train_step(torch.from_numpy(counts[s : s + 64].astype(np.float32)), [opt], 0.0)
        for form, (write, read) in _forms(counts).items():
            path = workdir / f"{form.replace(' ', '-')}.parquet"
            started = time.perf_counter()
            pq.write_table(write(counts), path, compression="lz4", row_group_size=1024)
            wrote = time.perf_counter() - started
            started = time.perf_counter()
            back = read(pq.read_table(path))
            read_s = time.perf_counter() - started
            exact = bool(np.array_equal(back, counts.astype(np.float32)))
            # a training pass that reads each row group in this form and steps on its 64-row batches
            started, rows = time.perf_counter(), 0
            model.train()
            file = pq.ParquetFile(path)
            for g in range(min(file.num_row_groups, 4)):
                x = torch.from_numpy(read(file.read_row_group(g)))
                for s in range(0, len(x), 64):
                    model.train_step(x[s : s + 64], [opt], 0.0)
                rows += len(x)
            rate = rows / (time.perf_counter() - started)
            mb = path.stat().st_size / 1e6
            print(f"  {form:<14} {mb:>10.2f} {wrote:>8.2f} {read_s:>7.2f} {rate:>13.0f}  {exact}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument(
        "--backgrounds", default="0.1,0", help="built-in corpus: comma-separated shares of general words, a run each"
    )
    parser.add_argument("--seeds", default="0", help="comma-separated train seeds, a run each")
    parser.add_argument("--docstrings", action="store_true", help="run on this Python's docstrings (real text)")
    parser.add_argument("--storage", action="store_true", help="measure sparse against dense storage instead")
    args = parser.parse_args()
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="latent-text-"))
    workspace.mkdir(parents=True, exist_ok=True)
    if args.storage:
        storage(workspace)
    else:
        sets = args.sets
        if args.docstrings:
            n = docstring_corpus(workspace / "docstrings")
            print(f"real-text corpus: {n:,} modules' docstrings from {sys.executable}")
            sets = [f"dataset.path={workspace / 'docstrings'}", *sets]
        backgrounds = [float(b) for b in args.backgrounds.split(",")]
        compare(workspace, args.threads, sets, backgrounds, [int(s) for s in args.seeds.split(",")])


if __name__ == "__main__":
    main()
