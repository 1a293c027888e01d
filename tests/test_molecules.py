"""Molecules end to end through `latent run` (fingerprint and SELFIES presets), their bad inputs, the analysis
commands, and the MOSES-style metrics."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from latent.analysis import molecules as m
from latent.chem import morgan_fingerprints, tokens_to_smiles
from latent.data.sources.molecules import BUILTIN, read_smi
from tests.helpers import ROOT, app_error_line, latent_cmd, one_line_error

FAST = [
    "train.epochs=3",
    "report.tsne_perplexity=10",
    "report.n_samples=32",
    "report.disentanglement=false",
    "dataset.molecules.n_molecules=300",
]


def _conf(cwd: Path) -> None:
    (cwd / "conf").mkdir(exist_ok=True)
    for name in ("default.yaml", "molecules-fingerprint.yaml", "molecules-selfies.yaml"):
        (cwd / "conf" / name).write_text((ROOT / "conf" / name).read_text())


# ---- metrics: pure functions with known answers ------------------------------------------------------------------


@pytest.mark.unit
def test_validity_uniqueness_and_novelty_count_as_moses_does():
    generated = ["CCO", "OCC", "c1ccccc1", "C1CC(", ""]  # ethanol twice (two spellings), benzene, two invalid
    assert m.validity(generated) == pytest.approx(3 / 5)
    assert m.uniqueness(generated) == pytest.approx(2 / 3)
    assert m.novelty(generated, ["CCO"]) == pytest.approx(1 / 2)
    assert m.reconstruction_accuracy(["CCO", "CCN"], ["OCC", "CCC"]) == pytest.approx(0.5)
    assert m.token_accuracy([["[C]", "[C]", "[O]"], ["[C]"]], [["[C]", "[O]"], ["[N]", "[C]"]]) == pytest.approx(1 / 6)


@pytest.mark.unit
def test_tanimoto_is_one_for_the_same_fingerprint_and_latent_neighbours_beat_random_pairs():
    fps = morgan_fingerprints(["CCO", "CCO", "c1ccccc1O"], 2, 256)
    sims = m.tanimoto_matrix(fps, fps)
    assert sims[0, 1] == pytest.approx(1.0) and sims[0, 2] < 0.5
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 4, 400)
    prototypes = rng.random((4, 128)) < 0.2
    bits = prototypes[groups] ^ (rng.random((400, 128)) < 0.02)
    z = np.eye(4)[groups] + rng.normal(0, 0.05, (400, 4))  # a latent space that separates the four families
    scores = m.neighbour_tanimoto(z, bits, seed=0)
    assert scores["molecules_neighbour_tanimoto"] > 0.8 > 0.4 > scores["molecules_random_tanimoto"]
    noise = m.neighbour_tanimoto(rng.normal(size=(400, 4)), bits, seed=0)  # a latent space that knows nothing
    assert abs(noise["molecules_neighbour_tanimoto"] - noise["molecules_random_tanimoto"]) < 0.1


@pytest.mark.unit
def test_a_property_probe_scores_one_on_a_linear_property_and_about_zero_on_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5))
    y = x @ np.array([1.0, -2.0, 0.0, 0.5, 0.0])
    assert m.property_probe_r2(x[:200], y[:200], x[200:], y[200:]) > 0.99
    assert m.property_probe_r2(x[:200], rng.normal(size=200), x[200:], rng.normal(size=100)) < 0.1


@pytest.mark.unit
def test_any_selfies_token_sequence_that_starts_with_an_atom_decodes_to_a_valid_molecule():
    from latent.chem import PAD, is_atom_token, selfies_tokens

    smiles, _ = read_smi(BUILTIN)
    vocabulary = [PAD, *sorted({t for s in smiles[:500] for t in selfies_tokens(s)} - {PAD})]
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(vocabulary), (200, 30))
    atoms = [i for i, t in enumerate(vocabulary) if is_atom_token(t)]
    rows[:, 0] = rng.choice(atoms, 200)
    assert m.validity(tokens_to_smiles(rows, vocabulary)) == 1.0


@pytest.mark.unit
def test_the_metric_module_is_pure():
    """latent/analysis/molecules.py: functions of SMILES lists and arrays; no tracking, query or workspace code."""
    source = (ROOT / "latent" / "analysis" / "molecules.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    forbidden = ("mlflow", "duckdb", "latent.workspace", "latent.tables", "latent.tracking", "prefect")
    assert not [i for i in imported if i.startswith(forbidden)], imported
    # at run time too (beyond what the latent.analysis package itself loads): chem and RDKit only
    code = (
        "import sys, latent.analysis; before = set(sys.modules); import latent.analysis.molecules\n"
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in ('mlflow', 'duckdb', 'prefect')"
        " or m in ('latent.workspace', 'latent.tables', 'latent.tracking')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", loaded


@pytest.mark.unit
def test_without_rdkit_the_error_names_the_extra():
    code = (
        "import sys; sys.modules['rdkit'] = None\n"
        "from latent.chem import canonical_smiles\n"
        "try:\n    canonical_smiles('CCO')\nexcept Exception as exc:\n    print(type(exc).__name__, exc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("ConfigError") and "pip install 'latent[molecules]'" in out, out


@pytest.mark.unit
def test_the_selfies_vae_decodes_every_prior_sample_to_a_valid_molecule_even_untrained():
    import torch

    from latent.chem import PAD, selfies_tokens
    from latent.models import create_model

    torch.manual_seed(0)  # the weights and codes below: the checks on a briefly trained model are not left to chance
    smiles, _ = read_smi(BUILTIN)
    vocabulary = [PAD, *sorted({t for s in smiles[:300] for t in selfies_tokens(s)} - {PAD})]
    index = {t: i for i, t in enumerate(vocabulary)}
    x = np.zeros((64, 40), np.float32)
    for r, s in enumerate(smiles[:64]):
        tokens = selfies_tokens(s)
        x[r, : len(tokens)] = [index[t] for t in tokens]
    model = create_model("selfies_vae", input_dim=40, vocab_size=len(vocabulary), latent_dim=8, hidden_dims=(32,))
    model.train()
    out = model(torch.from_numpy(x))
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.recon.shape == (64, 40)
    model.eval()
    with torch.no_grad():
        decoded = model.decode(torch.randn(100, 8)).numpy()
    assert m.validity(tokens_to_smiles(decoded, vocabulary)) == 1.0
    # briefly trained, the decoder reads z: distinct molecules' codes decode greedily to distinct molecules, and
    # prior samples (tokens drawn at temperature 1) are valid and mostly distinct
    (optimizer,) = model.configure_optimizers(0.01, 0.0)
    model.control.free_bits = 1.0  # as train.free_bits: z keeps a few nats however short the training
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small GRU steps: on a loaded machine two threads are ~50x slower than one
    try:
        model.train()
        for _ in range(30):
            model.train_step(torch.from_numpy(x), [optimizer], 0.0)
        model.eval()
        with torch.no_grad():
            recon = tokens_to_smiles(model.decode(model.encode(torch.from_numpy(x))[0]).numpy(), vocabulary)
            sampled = tokens_to_smiles(model.sample_tokens(torch.randn(32, 8), 1.0, seed=0).numpy(), vocabulary)
    finally:
        torch.set_num_threads(threads)
    assert len(set(recon)) > 1
    assert m.validity(sampled) == 1.0 and m.uniqueness(sampled) > 0.5


# ---- end to end through `latent run` -----------------------------------------------------------------------------


def _run(tmp_path_factory, preset: str):
    cwd = tmp_path_factory.mktemp(preset)
    _conf(cwd)
    args = ["-c", f"conf/{preset}.yaml", *(a for s in FAST for a in ("--set", s))]
    proc = latent_cmd("run", *args, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return cwd, args


@pytest.fixture(scope="module")
def fingerprint_run(tmp_path_factory):
    return _run(tmp_path_factory, "molecules-fingerprint")


@pytest.fixture(scope="module")
def selfies_run(tmp_path_factory):
    return _run(tmp_path_factory, "molecules-selfies")


def _metrics(cwd: Path) -> dict:
    return json.loads(next((cwd / "workspace" / "reports").glob("*/metrics.json")).read_text())


@pytest.mark.e2e
def test_latent_run_on_fingerprints_reports_probes_and_neighbour_similarity(fingerprint_run):
    cwd, _ = fingerprint_run
    metrics = _metrics(cwd)
    for prop in ("logp", "qed", "tpsa"):
        for inputs in ("latent", "fingerprint"):
            assert np.isfinite(metrics[f"molecules_probe_r2_{prop}_{inputs}"])
    assert 0 <= metrics["molecules_random_tanimoto"] < metrics["molecules_neighbour_tanimoto"] <= 1
    assert "molecules_validity" not in metrics  # a fingerprint is not decoded into a molecule
    report = next((cwd / "workspace" / "reports").glob("*/report.html"))
    page = report.read_text()
    assert "Molecules: generation, probes and neighbours" in page and "do not apply to the fingerprint model" in page
    assert '"kind":"text"' in page  # the SMILES goes beside the hovered point, with its drawing as the thumbnail
    for name in ("molecule_samples.png", "molecule_reconstructions.png", "molecule_interpolation.png"):
        assert (report.parent / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = next((cwd / "workspace" / "latents").glob("*/*/split=test/*.parquet"))
    smiles = pq.read_table(table, columns=["smiles"]).column("smiles").to_pylist()
    assert smiles and m.validity(smiles) == 1.0
    dataset = next((cwd / "workspace" / "datasets").glob("*/molecules.json"))
    assert json.loads(dataset.read_text())["bits"] == 1024


@pytest.mark.e2e
def test_latent_run_on_selfies_decodes_only_valid_molecules(selfies_run):
    cwd, _ = selfies_run
    metrics = _metrics(cwd)
    assert metrics["molecules_validity"] == 1.0
    assert 0 < metrics["molecules_uniqueness"] <= 1 and 0 <= metrics["molecules_novelty"] <= 1
    assert 0 <= metrics["molecules_reconstruction_accuracy"] <= 1
    info = json.loads(next((cwd / "workspace" / "datasets").glob("*/molecules.json")).read_text())
    assert info["tokens"][0] == "[nop]" and info["max_tokens"] == 40


def _analysis_commands(cwd: Path, args: list[str], latent_app, monkeypatch) -> dict:
    """The analysis commands in this process (their output is what is tested, not the process), from `cwd`."""
    monkeypatch.chdir(cwd)
    table = next((cwd / "workspace" / "latents").glob("*/*/split=test/*.parquet"))
    ids = pq.read_table(table, columns=["id"]).column("id").to_pylist()[:2]
    tables = sorted(str(p.parent) for p in (cwd / "workspace" / "latents").glob("*/*/split=test"))
    commands = {
        "interpolate": ["interpolate", "--from", ids[0], "--to", ids[1], "--steps", "4"],
        "traverse": ["traverse", "--dims", "2", "--anchors", "1", "--steps", "3"],
        "neighbors": ["neighbors", ids[0], "-k", "3"],
        "probe": ["probe", "--budgets", "10,all"],
        "arithmetic": ["arithmetic", "--plus", "label = 1", "--minus", "label = 0", "--rows", "2"],
        "compare": ["compare", tables[0], tables[-1]],
    }
    return {name: latent_app(*command, *args) for name, command in commands.items()}


def _check_commands(results: dict) -> None:
    for name in ("interpolate", "traverse", "neighbors", "compare"):
        assert results[name].exit_code == 0, (name, results[name].stdout, results[name].stderr)
    # the built-in molecules have no labels: one line each
    for name in ("probe", "arithmetic"):
        assert results[name].exit_code == 0 or app_error_line(results[name]), name


@pytest.mark.e2e
def test_analysis_commands_on_a_fingerprint_table(fingerprint_run, latent_app, monkeypatch):
    cwd, args = fingerprint_run
    results = _analysis_commands(cwd, args, latent_app, monkeypatch)
    _check_commands(results)
    assert "smiles" in results["neighbors"].stdout  # similar molecules come back as molecules
    # a molecule dataset has no shifted domain: one line (a flow command: a real process, Prefect's server)
    assert "apply to images" in one_line_error(latent_cmd("transfer", *args, cwd=cwd))


@pytest.mark.e2e
def test_analysis_commands_on_a_selfies_table_decode_molecules(selfies_run, latent_app, monkeypatch):
    cwd, args = selfies_run
    _check_commands(_analysis_commands(cwd, args, latent_app, monkeypatch))
    analysis = json.loads(next((cwd / "workspace" / "analysis").glob("interpolation-*/analysis.json")).read_text())
    assert len(analysis["decoded_smiles"]) == 4 and m.validity(analysis["decoded_smiles"]) == 1.0
    traversal = json.loads(next((cwd / "workspace" / "analysis").glob("traversals-*/analysis.json")).read_text())
    assert m.validity(traversal["decoded_smiles"]) == 1.0


# ---- bad inputs ----------------------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_an_unparsable_smiles_is_one_line_naming_the_row_or_is_quarantined(
    tmp_path, prefect_harness, monkeypatch, latent_app
):
    """In this process: the line and the quarantine are the point (tests/test_bad_inputs.py checks that a real
    process prints nothing else)."""
    _conf(tmp_path)
    monkeypatch.chdir(tmp_path)
    good = ["CCO", "c1ccccc1", "CC(=O)O", "CCN", "CCCC", "c1ccncc1", "CC(C)O", "OCCO", "CCOC", "CCCl"] * 3
    (tmp_path / "mols.smi").write_text("".join(f"{s} m{i}\n" for i, s in enumerate(good)) + "C1CC( broken\n")
    base = ["-c", "conf/molecules-fingerprint.yaml", "--set", "dataset.path=mols.smi"]
    line = app_error_line(latent_app("ingest", *base))
    assert "mols.smi:31: RDKit cannot parse the SMILES 'C1CC('" in line and "on_bad_file: skip" in line
    skip = [*base, "--set", "dataset.molecules.on_bad_file=skip"]
    assert latent_app("ingest", *skip).exit_code == 0
    result = latent_app("preprocess", *skip)
    assert result.exit_code == 0, result.stderr
    quarantine = pq.read_table(next((tmp_path / "workspace" / "datasets").glob("*/quarantine.parquet")))
    assert quarantine.num_rows == 1 and "C1CC(" in quarantine.column("reason")[0].as_py()


@pytest.mark.e2e
def test_more_bad_smiles_than_the_skip_ceiling_fails(tmp_path, prefect_harness, monkeypatch, latent_app):
    _conf(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mols.csv").write_text("smiles\n" + "CCO\nXYZ\n" * 10)
    skip = ["-c", "conf/molecules-fingerprint.yaml", "--set", "dataset.path=mols.csv"]
    skip += ["--set", "dataset.molecules.on_bad_file=skip"]
    assert latent_app("ingest", *skip).exit_code == 0
    line = app_error_line(latent_app("preprocess", *skip))
    assert "10 of 20" in line and "max_skipped_fraction" in line
