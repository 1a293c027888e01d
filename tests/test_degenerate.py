"""Tiny and one-sided tables through every stage: each either runs to a report or fails with one clear line at the
earliest stage that can know. Never an internal error (the first real photo folder ended on scikit-learn's
`Expected n_neighbors > 0`)."""

from __future__ import annotations

import hashlib
import pathlib

import numpy as np
import pytest

from latent.config import load_config
from latent.errors import LatentError
from latent.tables import load_latent_arrays
from tests.helpers import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _table(n: int, cols: int = 3, label: bool = True, constant: bool = False, classes: int = 3) -> str:
    rng = np.random.default_rng(0)
    head = ",".join([f"f{i}" for i in range(cols)] + (["label"] if label else []))
    rows = []
    for r in range(n):
        values = [f"{(1.0 if constant and i == 0 else rng.normal()):.3f}" for i in range(cols)]
        rows.append(",".join(values + ([str(r % classes)] if label else [])))
    return head + "\n" + "\n".join(rows) + "\n"


CASES = {
    "one-row": (_table(1), ()),
    "two-rows": (_table(2), ()),
    "batch-size-minus-one-rows": (_table(63), ("train.batch_size=64",)),
    "one-class": (_table(120, classes=1), ()),
    "one-feature": (_table(120, cols=1), ()),
    "a-constant-feature": (_table(120, constant=True), ()),
    "no-val-or-test-split": (_table(120), ("preprocess.split.val=0", "preprocess.split.test=0")),
    "no-label-column": (_table(120, label=False), ()),
}


def _run_stages(tmp_path, csv: str, extra: tuple[str, ...]):
    from latent.data import ingest, preprocess
    from latent.encode import encode
    from latent.report import build_report
    from latent.tracking import setup_tracking
    from latent.train import train
    from latent.workspace import Workspace

    (tmp_path / "t.csv").write_text(csv)
    sets = [f"workspace={tmp_path / 'ws'}", "dataset.source=tabular", f"dataset.path={tmp_path / 't.csv'}"]
    sets += ["model.likelihood=gaussian", "train.epochs=2", "dask.n_workers=1", "report.n_samples=4"]
    if "label" in csv.splitlines()[0]:
        sets.append("dataset.tabular.label=label")
    cfg = load_config(ROOT / "conf" / "default.yaml", [*sets, "report.n_reconstructions=4", *extra])
    ws = Workspace.at(cfg.workspace)
    tracking = setup_tracking(cfg.tracking, ws)
    ing = ingest(cfg.dataset, ws)
    pre = preprocess(ing.raw_path, ing.fingerprint, cfg.preprocess, cfg.dask, ws)
    tr = train(pre.dataset_path, cfg.model, cfg.train, ws, tracking, None)
    enc = encode(pre.dataset_path, tr.model_uri, tr.model_version, cfg.encode, ws, tracking, tr.run_id)
    return pre, enc, build_report(enc.table_path, pre.dataset_path, tr.model_uri, cfg.report, ws, tracking)


@pytest.mark.parametrize("case", list(CASES))
def test_a_tiny_or_one_sided_table_gives_a_report_or_one_clear_line(tmp_path, case):
    csv, extra = CASES[case]
    try:
        pre, enc, report = _run_stages(tmp_path, csv, extra)
    except LatentError as exc:  # a clear refusal is allowed; an internal error is not
        message = str(exc)
        assert "\n" not in message and str(tmp_path) in message, message
        return
    assert len(load_latent_arrays(enc.table_path)["id"]) == pre.n_rows  # every row encoded
    assert pathlib.Path(report.html_path).stat().st_size > 0


def test_a_one_row_report_says_why_it_has_no_t_sne(tmp_path):
    # the split is a hash of the row id, which names the file's path: with no held-out splits the row trains
    _, _, report = _run_stages(tmp_path, _table(1), ("preprocess.split.val=0", "preprocess.split.test=0"))
    page = pathlib.Path(report.html_path).read_text()
    assert "t-SNE needs at least 5" in page


def test_a_table_whose_rows_all_fall_outside_train_is_refused_with_the_remedy(tmp_path):
    from latent.config import SplitConfig
    from latent.data import ingest, preprocess
    from latent.data.dataset import split_of
    from latent.errors import DataError
    from latent.workspace import Workspace

    # find a file name whose one row hashes below 0.5, then send everything below 0.5 to the test split
    for k in range(100):
        path = tmp_path / f"t{k}.csv"
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
        if split_of(f"{path.stem}-{digest}-00000000", SplitConfig(val=0.0, test=0.5)) == "test":
            break
    path.write_text(_table(1))
    sets = [f"workspace={tmp_path / 'ws'}", "dataset.source=tabular", f"dataset.path={path}", "dask.n_workers=1"]
    cfg = load_config(ROOT / "conf" / "default.yaml", [*sets, "preprocess.split.val=0", "preprocess.split.test=0.5"])
    ws = Workspace.at(cfg.workspace)
    ing = ingest(cfg.dataset, ws)
    with pytest.raises(DataError) as caught:
        preprocess(ing.raw_path, ing.fingerprint, cfg.preprocess, cfg.dask, ws)
    message = str(caught.value)
    assert str(path) in message and "train split" in message and "preprocess.split.val=0" in message
    assert not list((tmp_path / "ws" / "datasets").glob("*/manifest.json"))  # nothing half-written left behind
