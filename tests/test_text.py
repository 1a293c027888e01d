"""Text end to end through `latent run`, its bad inputs, the analysis commands, and the topic metrics."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from latent.analysis.topics import npmi_coherence, top_word_indices
from tests.helpers import ROOT, app_error_line, latent_cmd, one_line_error

pytestmark = pytest.mark.e2e

FAST = ["train.epochs=3", "report.tsne_perplexity=10", "report.n_samples=8", "dataset.text.n_documents=300"]


def test_npmi_is_one_for_words_that_always_co_occur_and_minus_one_for_words_that_never_do():
    counts = np.array([[1, 1, 0, 0], [2, 1, 0, 0], [0, 0, 1, 1], [0, 0, 3, 1]])
    assert npmi_coherence(np.array([[0, 1]]), counts)[0] == pytest.approx(1.0)
    assert npmi_coherence(np.array([[0, 2]]), counts)[0] == pytest.approx(-1.0)
    assert top_word_indices(np.array([[0.1, 0.9, 0.5]]), 2).tolist() == [[1, 2]]


def test_the_built_in_corpus_draws_its_background_share_from_general_words_only():
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from latent.data.sources.text import FILLER_WORDS, GENERAL_WORDS, TOPIC_WORDS, generate_corpus

    topical = {w for words in TOPIC_WORDS.values() for w in words}
    general = set(GENERAL_WORDS)
    assert len(general) == len(GENERAL_WORDS) > 100
    assert not general & (topical | set(FILLER_WORDS) | set(ENGLISH_STOP_WORDS))  # survives stop-word removal
    for background in (0.0, 0.2):
        docs, _ = generate_corpus(400, 0, background)
        tokens = [w.strip(".").lower() for d in docs for w in d.split()]
        share = sum(w in general for w in tokens) / len(tokens)
        assert share == pytest.approx(background, abs=0.01)


def test_prodlda_topics_stay_coherent_where_lda_takes_in_the_general_words():
    """ProdLDA's known advantage (Srivastava & Sutton, 2017): with general words in the corpus, LDA's mixture puts
    them among its topics' top words; the product of experts keeps each topic's words its own."""
    import torch
    from sklearn.feature_extraction.text import CountVectorizer

    from latent.analysis.topics import compare_with_lda
    from latent.data.sources.text import GENERAL_WORDS, generate_corpus
    from latent.models.prodlda import ProdLDA, ProdLDAConfig

    docs, _ = generate_corpus(1200, 0, 0.25)
    vectorizer = CountVectorizer(min_df=2, stop_words="english").fit(docs[:1000])
    x_train, x_test = (vectorizer.transform(d).toarray().astype(np.float32) for d in (docs[:1000], docs[1000:]))
    vocabulary = vectorizer.get_feature_names_out().tolist()
    torch.manual_seed(0)
    model = ProdLDA(ProdLDAConfig(input_dim=len(vocabulary), latent_dim=8))
    (optimizer,) = model.configure_optimizers(0.002, 0.0)
    x = torch.from_numpy(x_train)
    for _ in range(40):
        model.train()
        order = torch.randperm(len(x))
        for start in range(0, len(x), 64):
            model.train_step(x[order[start : start + 64]], [optimizer], 0.0)
    metrics, words = compare_with_lda(model, x_train, x_test, vocabulary)
    general = set(GENERAL_WORDS)
    in_topics = {name: sum(w in general for topic in w_ for w in topic) for name, w_ in words.items()}
    assert in_topics["lda"] > in_topics["prodlda"], in_topics
    assert metrics["text_npmi_prodlda"] > metrics["text_npmi_lda"] + 0.03, metrics


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("text")
    (cwd / "conf").mkdir()
    for name in ("default.yaml", "text-prodlda.yaml"):
        (cwd / "conf" / name).write_text((ROOT / "conf" / name).read_text())
    args = ["-c", "conf/text-prodlda.yaml", *(a for s in FAST for a in ("--set", s))]
    proc = latent_cmd("run", *args, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return cwd, args


def test_latent_run_on_text_reports_topics_against_lda(text_run):
    cwd, _ = text_run
    report = next((cwd / "workspace" / "reports").glob("*/metrics.json"))
    metrics = json.loads(report.read_text())
    keys = ("text_npmi_prodlda", "text_npmi_lda", "text_npmi_heldout_prodlda", "text_npmi_heldout_lda")
    for key in (*keys, "text_perplexity_prodlda", "text_perplexity_lda"):
        assert np.isfinite(metrics[key]), key
    assert -1 <= metrics["text_npmi_prodlda"] <= 1 and metrics["text_perplexity_prodlda"] > 1
    assert metrics["text_reference_documents"] == 300 > metrics["text_heldout_documents"]  # every document
    page = (report.parent / "report.html").read_text()
    assert "Topics: top words per latent dimension" in page and "Samples from the prior as their top words" in page
    assert '"kind":"text"' in page  # the document start goes beside the hovered point
    from latent.explore.modalities import coherence_verdict

    verdict = coherence_verdict(metrics, 1)  # the sentence for this run's figures is on the page
    assert html.escape(verdict.split(":")[0]) in page and f"{metrics['text_npmi_lda']:.3f}" in page
    assert ("LDA's topics are more coherent" in verdict) == (metrics["text_npmi_lda"] > metrics["text_npmi_prodlda"])
    table = next((cwd / "workspace" / "latents").glob("*/*/split=test/*.parquet"))
    previews = pq.read_table(table, columns=["text_preview"]).column("text_preview").to_pylist()
    assert previews and all(0 < len(p) <= 200 for p in previews)
    vocabulary = json.loads(next((cwd / "workspace" / "datasets").glob("*/vocabulary.json")).read_text())
    assert "the" not in vocabulary and "planet" in vocabulary  # stop words out, topic words in


def test_analysis_commands_work_on_a_text_table(text_run, monkeypatch, latent_app):
    cwd, args = text_run
    monkeypatch.chdir(cwd)  # in this process: the commands' output, not the process, is what is tested here
    table = next((cwd / "workspace" / "latents").glob("*/*/split=test/*.parquet"))
    ids = pq.read_table(table, columns=["id"]).column("id").to_pylist()[:2]
    for command in (
        ["interpolate", "--from", ids[0], "--to", ids[1], "--steps", "4"],
        ["traverse", "--dims", "2", "--anchors", "1", "--steps", "3"],
        ["neighbors", ids[0], "-k", "3"],
        ["probe", "--budgets", "10,all"],
        ["arithmetic", "--plus", "label = 1", "--minus", "label = 0", "--rows", "2"],
        ["compare", str(table.parent.parent), str(table.parent.parent)],
    ):
        result = latent_app(*command, *args)
        assert result.exit_code == 0, (command, result.stdout, result.stderr)
    analysis = next((cwd / "workspace" / "analysis").glob("interpolation-*/analysis.json"))
    assert len(json.loads(analysis.read_text())["decoded_top_words"]) == 4
    # documents have no shifted domain to transfer to: one line (a flow command: a real process, Prefect's server)
    assert "apply to images" in one_line_error(latent_cmd("transfer", *args, cwd=cwd))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_document_that_is_not_utf8_is_one_line_or_quarantined(tmp_path, prefect_harness, monkeypatch, latent_app):
    """In this process: the line and the quarantine are the point (tests/test_bad_inputs.py checks that a real
    process prints nothing else)."""
    (tmp_path / "conf").mkdir()
    for name in ("default.yaml", "text-prodlda.yaml"):
        (tmp_path / "conf" / name).write_text((ROOT / "conf" / name).read_text())
    rows = b"text,label\n" + b"".join(b'"planet orbit rocket star moon %d",1\n' % i for i in range(40))
    rows += b'"caf\xe9 latin-1 text",0\n' + b'"",0\n'
    _write(tmp_path / "docs.csv", rows)
    monkeypatch.chdir(tmp_path)
    base = ["-c", "conf/text-prodlda.yaml", "--set", "dataset.path=docs.csv", "--set", "dataset.text.label=label"]
    line = app_error_line(latent_app("ingest", *base))
    assert "docs.csv: row 40: not UTF-8" in line and "on_bad_file: skip" in line
    skip = [*base, "--set", "dataset.text.on_bad_file=skip", "--set", "dataset.text.min_df=1"]
    assert latent_app("ingest", *skip).exit_code == 0
    result = latent_app("preprocess", *base, "--set", "dataset.text.on_bad_file=skip", "--set", "dataset.text.min_df=1")
    assert result.exit_code == 0, result.stderr
    quarantine = pq.read_table(next((tmp_path / "workspace" / "datasets").glob("*/quarantine.parquet")))
    reasons = quarantine.column("reason").to_pylist()
    assert len(reasons) == 2 and any("not UTF-8" in r for r in reasons) and any("empty" in r for r in reasons)


def test_a_missing_text_column_names_the_file_and_the_key(tmp_path, prefect_harness, monkeypatch, latent_app):
    (tmp_path / "conf").mkdir()
    for name in ("default.yaml", "text-prodlda.yaml"):
        (tmp_path / "conf" / name).write_text((ROOT / "conf" / name).read_text())
    _write(tmp_path / "docs.jsonl", b'{"body": "planet orbit"}\n')
    monkeypatch.chdir(tmp_path)
    line = app_error_line(latent_app("ingest", "-c", "conf/text-prodlda.yaml", "--set", "dataset.path=docs.jsonl"))
    assert "docs.jsonl: line 1 has no field 'text' (dataset.text.column)" in line


def test_max_df_drops_the_words_of_every_document_and_a_vocabulary_left_empty_is_one_line(
    tmp_path, prefect_harness, monkeypatch, latent_app
):
    (tmp_path / "conf").mkdir()
    for name in ("default.yaml", "text-prodlda.yaml"):
        (tmp_path / "conf" / name).write_text((ROOT / "conf" / name).read_text())
    _write(tmp_path / "docs.csv", b"text\n" + b"".join(b'"planet orbit %s"\n' % w for w in (b"comet", b"moon") * 20))
    monkeypatch.chdir(tmp_path)
    base = ["-c", "conf/text-prodlda.yaml", "--set", "dataset.path=docs.csv", "--set", "dataset.text.max_df=0.6"]
    for stage in ("ingest", "preprocess"):
        result = latent_app(stage, *base)
        assert result.exit_code == 0, result.stderr
    vocabulary = json.loads(next((tmp_path / "workspace" / "datasets").glob("*/vocabulary.json")).read_text())
    assert vocabulary == ["comet", "moon"]  # "planet" and "orbit" are in every document
    assert latent_app("ingest", *base[:-1], "dataset.text.max_df=0.3").exit_code == 0
    line = app_error_line(latent_app("preprocess", *base[:-1], "dataset.text.max_df=0.3"))
    assert "docs.csv: no vocabulary from the train split" in line and "max_df" in line
    datasets = tmp_path / "workspace" / "datasets"
    assert len([p for p in datasets.iterdir() if p.is_dir()]) == 1  # the first table only: nothing half-written
    assert not [p for p in (tmp_path / "workspace").rglob("*") if ".tmp" in p.name or "staging" in p.name]


def test_words_are_runs_of_letters_and_a_token_pattern_that_is_not_a_regex_is_one_line(
    tmp_path, prefect_harness, monkeypatch, latent_app
):
    (tmp_path / "conf").mkdir()
    for name in ("default.yaml", "text-prodlda.yaml"):
        (tmp_path / "conf" / name).write_text((ROOT / "conf" / name).read_text())
    rows = [b'"python3 on amd64, version 2.0 of report_id 0x1f planet"\n'] * 10 + [b'"orbit comet v12"\n'] * 10
    _write(tmp_path / "docs.csv", b"text\n" + b"".join(rows))
    monkeypatch.chdir(tmp_path)
    base = ["-c", "conf/text-prodlda.yaml", "--set", "dataset.path=docs.csv"]
    for stage in ("ingest", "preprocess"):
        result = latent_app(stage, *base)
        assert result.exit_code == 0, result.stderr
    vocabulary = json.loads(next((tmp_path / "workspace" / "datasets").glob("*/vocabulary.json")).read_text())
    # numbers, hex and single letters are not words; a word glued to digits or underscores keeps its letters
    assert vocabulary == ["amd", "comet", "id", "orbit", "planet", "python", "report", "version"]
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "workspace").rglob("*"))
    line = app_error_line(latent_app("ingest", *base, "--set", "dataset.text.token_pattern=(?u)\\w+("))
    assert "dataset.text.token_pattern" in line and "not a regular expression" in line
    line = app_error_line(latent_app("ingest", *base, "--set", "dataset.text.token_pattern=(a)(b)"))
    assert "dataset.text.token_pattern" in line and "at most one capturing group" in line
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "workspace").rglob("*")) == before  # nothing written
