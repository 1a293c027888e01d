from pathlib import Path

import pytest
from pydantic import ValidationError

from latent.config import Config, load_config, parse_override
from latent.errors import ConfigError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "conf" / "default.yaml"


def test_default_yaml_describes_the_built_in_defaults():
    assert load_config(DEFAULT) == Config()
    assert load_config(None) == Config()


def test_overrides_are_read_as_yaml_values():
    cfg = load_config(
        DEFAULT,
        [
            "train.epochs=7",
            "train.learning_rate=0.01",
            "dask.address=null",
            "model.hidden_dims=[32, 16]",
            "tracking.experiment=exp",
        ],
    )
    assert cfg.train.epochs == 7
    assert cfg.train.learning_rate == 0.01
    assert cfg.dask.address is None
    assert cfg.model.hidden_dims == [32, 16]
    assert cfg.tracking.experiment == "exp"


def test_unknown_key_in_file_names_file_key_and_choices(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    msg = str(err.value)
    assert msg.startswith(f"{bad}: train.epoch: unknown key")
    assert "epochs" in msg
    assert "\n" not in msg


def test_bad_override_value_names_the_override_and_the_value():
    with pytest.raises(ConfigError) as err:
        load_config(DEFAULT, ["train.epochs=ten"])
    assert str(err.value) == "--set train.epochs=ten: train.epochs: input should be a valid integer, got 'ten'"


def test_unknown_override_key_is_refused():
    with pytest.raises(ConfigError, match=r"^--set train\.epoch=3: train\.epoch: unknown key"):
        load_config(DEFAULT, ["train.epoch=3"])


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("train.epochs=0", "train.epochs: input should be greater than 0"),
        ("model.name=nope", "model.name: unknown model 'nope'"),
        ("preprocess.split.val=0.95", "preprocess.split: val + test must be below 1"),
        ("train.device=gpu", "train.device: string should match pattern"),
        ("train=3", "train: expected a section of keys, got 3"),
        ("train.epochs=true", "train.epochs: input should be a valid integer"),
    ],
)
def test_invalid_values_are_refused_with_the_key(override, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(DEFAULT, [override])
    assert fragment in str(err.value)


@pytest.mark.parametrize("text", ["noequals", "=5", "a..b=1"])
def test_malformed_override_is_refused(text):
    with pytest.raises(ConfigError, match=r"expected dotted\.key=value"):
        parse_override(text)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(listy)
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


def test_config_hash_follows_the_resolved_values():
    a = load_config(DEFAULT)
    assert a.config_hash() == load_config(DEFAULT).config_hash()
    assert a.config_hash() != load_config(DEFAULT, ["train.epochs=3"]).config_hash()


def test_config_is_frozen():
    cfg = Config()
    with pytest.raises(ValidationError):
        cfg.train.epochs = 3  # type: ignore[misc]
