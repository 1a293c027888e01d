"""The documentation is a contract: the analysts' snippets run against a real table, the generated references cover
every command and every configuration key, and the README's table lists every command."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT

ANALYSTS = ROOT / "docs" / "guides" / "analysts.md"
PLACEHOLDER = '"workspace/latents/<dataset-version>/<model-version>"'


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
def test_analyst_snippets_run_against_a_real_table(library_run, capsys):
    blocks = re.findall(r"```python\n(.*?)```", ANALYSTS.read_text(), re.S)
    assert len(blocks) == 2, "the analysts' guide should hold the pandas and the DuckDB snippet"
    for block in blocks:
        assert PLACEHOLDER in block
        exec(block.replace(PLACEHOLDER, repr(str(library_run.encode.table_path))), {})
    printed = capsys.readouterr().out
    assert "digits-00000" in printed and "cosine" in printed and "train" in printed


def _command_names() -> set[str]:
    names = set(_hooks().cli_commands())
    assert names >= {"run", "ingest", "preprocess", "train", "encode", "report", "ui", "query", "neighbors", "tables"}
    return names


@pytest.mark.unit
def test_the_generated_cli_reference_documents_every_command_and_option():
    hooks = _hooks()
    reference = hooks.cli_reference()
    options = 0
    for name, command in hooks.cli_commands().items():
        assert f"## `latent {name}`" in reference, name
        section = reference.split(f"## `latent {name}`", 1)[1].split("\n## ", 1)[0]
        for param in command.params:
            if param.param_type_name == "option" and not param.hidden:
                assert param.opts[0] in section, (name, param.opts)
                options += 1
    assert options > 3 * len(hooks.cli_commands())  # --config, --set and --debug at least, everywhere


@pytest.mark.unit
def test_the_readme_table_lists_every_command():
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `latent ([a-z-]+)[^`]*` \|", readme, re.M)
    assert set(rows) == _command_names()


@pytest.mark.unit
def test_the_generated_configuration_reference_documents_every_key():
    from latent.config import Config

    hooks = _hooks()
    reference = hooks.config_reference()
    keys = [key for key, _, _ in hooks.config_keys(Config)]
    assert "train.epochs" in keys and "dataset.image.size" in keys and "orchestration.timeouts_s.train" in keys
    documented = re.findall(r"^\| `([a-z_.]+)` \|", reference, re.M)
    assert documented == keys
    assert "| `train.epochs` | int | `100` |" in reference


@pytest.mark.unit
def test_every_configuration_key_has_a_meaning():
    """A key's meaning is the comment beside (or just above) its field in the configuration's source, or its
    pydantic description; a new key without one would show an empty cell in the reference."""
    from latent.config import Config

    hooks = _hooks()
    silent = [
        key
        for key, field, owner in hooks.config_keys(Config)
        if not (field.description or hooks.field_comments(owner).get(key.rsplit(".", 1)[-1]))
    ]
    assert silent == [], f"add a comment beside these fields in the configuration's models: {silent}"


@pytest.mark.integration
def test_the_site_builds_strictly_with_both_references(tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "latent neighbors" in (site / "reference" / "cli" / "index.html").read_text()
    assert "model.latent_dim" in (site / "reference" / "configuration" / "index.html").read_text()
    assert not (site / "hooks.py").exists()
