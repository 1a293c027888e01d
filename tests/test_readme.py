"""The README is the contract: its analyst snippets run, and it documents every command and config key."""

import re

from pydantic import BaseModel

from latent.config import Config
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()
PLACEHOLDER = '"workspace/latents/<dataset-version>/<model-version>"'


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_analyst_snippets_run_against_a_real_table(library_run, capsys):
    blocks = re.findall(r"```python\n(.*?)```", _section("Latent tables for analysts"), re.S)
    assert len(blocks) == 2
    for block in blocks:
        assert PLACEHOLDER in block
        exec(block.replace(PLACEHOLDER, repr(library_run.encode.table_path)), {})
    printed = capsys.readouterr().out
    assert "digits-00000" in printed and "cosine" in printed and "train" in printed


def test_every_cli_command_is_documented():
    from latent.flows.cli import app

    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert names >= {"run", "ingest", "preprocess", "train", "encode", "report", "ui", "query", "neighbors", "tables"}
    for name in names:
        assert f"`latent {name}`" in README, name


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += _keys(ann, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def test_every_config_key_is_in_the_reference():
    reference = _section("Configuration reference")
    for key in _keys(Config):
        section, _, leaf = key.rpartition(".")
        assert f"`{key}`" in reference or (section and f"`.{leaf}`" in reference and f"`{section}." in reference), key
