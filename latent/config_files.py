"""Config files before validation: YAML read (with `extends`), presets found by name, `--set` overrides applied.

Kept apart from the pydantic models in `latent.config` so that the analyst commands (`latent tables`, `query`,
`neighbors`), which need only the `workspace` key, answer without building them (`workspace_setting`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from latent.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("conf/default.yaml")
PRESETS_PACKAGE = "latent.conf"  # the repository's conf/, installed with the package
DEFAULT_WORKSPACE = "./workspace"  # Config.workspace's default
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (["a", "b", "c"], value); the value is read as YAML (so 5 is an int, null is None)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text}: expected dotted.key=value, e.g. --set train.epochs=5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text}: the value is not valid YAML ({one_line(exc)})") from None
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads 1e6 or 3E-4 as strings; on a command line they mean numbers
    return key.split("."), value


def _set_path(tree: dict[str, Any], path: list[str], value: Any, origin: str) -> None:
    node = tree
    for i, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"{origin}: {'.'.join(path[: i + 1])} is a value, not a section")
        node = child
    node[path[-1]] = value


def read_config_tree(
    path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()
) -> tuple[dict[str, Any], str, dict[tuple[str, ...], str]]:
    """The config as a plain tree (the file, or nothing for the built-in defaults, with the overrides applied),
    where it came from, and which override set each key (for error lines)."""
    source = "built-in defaults"
    tree: dict[str, Any] = {}
    if path is not None:
        source = str(path)
        tree = _read_tree(find_config(path), ())
    origins: dict[tuple[str, ...], str] = {}
    for text in overrides:
        keys, value = parse_override(text)
        _set_path(tree, keys, value, f"--set {text}")
        origins[tuple(keys)] = f"--set {text}"
    return tree, source, origins


def workspace_setting(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> str:
    """The `workspace` key alone, read and checked without validating the rest of the config: what the commands
    that only read a workspace need (the pipeline's commands validate the whole config)."""
    tree, source, origins = read_config_tree(path, overrides)
    value = tree.get("workspace", DEFAULT_WORKSPACE)
    if not isinstance(value, str) or not value:
        origin = origins.get(("workspace",), source)
        raise ConfigError(f"{origin}: workspace: input should be a valid string, got {value!r}")
    return value


def find_config(name_or_path: str | Path) -> Path:
    """A config file: an existing path as given, else a bare name (`digits-conv`, `default.yaml`) is the preset of
    that name shipped with the package; anything else is returned as given."""
    path = Path(name_or_path)
    if path.is_file() or path.parent != Path("."):
        return path
    from importlib.resources import files

    shipped = files(PRESETS_PACKAGE)
    for candidate in (path.name, f"{path.name}.yaml"):
        if candidate.endswith(".yaml") and shipped.joinpath(candidate).is_file():
            return Path(str(shipped.joinpath(candidate)))
    return path


def _read_tree(file: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """A config file as a dict; `extends: other.yaml` (relative to the file) merges this file over that one."""
    source = str(file)
    if not file.is_file():
        raise ConfigError(f"{source}: config file not found")
    if file.resolve() in chain:
        raise ConfigError(f"{source}: extends itself through {' -> '.join(str(p) for p in chain)}")
    try:
        loaded = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({one_line(exc)})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot be read ({exc})") from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level, got {type(loaded).__name__}")
    base = loaded.pop("extends", None)
    if base is None:
        return loaded
    if not isinstance(base, str):
        raise ConfigError(f"{source}: extends: expected a file name, got {base!r}")
    return _merge(_read_tree(file.parent / base, (*chain, file.resolve())), loaded)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
