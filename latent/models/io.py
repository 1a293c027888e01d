"""Saving and loading models as config JSON + state_dict (never a pickled class)."""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import re
import tempfile
from pathlib import Path

import torch
from torch import nn

from latent.errors import DataError, LatentError
from latent.models.registry import create_model
from latent.workspace import atomic_write_bytes, atomic_write_text

CONFIG_FILE = "model_config.json"
WEIGHTS_FILE = "weights.pt"


def model_spec(model: nn.Module) -> dict:
    return {"name": model.registry_name, "config": dataclasses.asdict(model.config)}


def save_model_files(model: nn.Module, directory: Path) -> tuple[Path, Path]:
    """Write model_config.json and weights.pt (atomically) into directory."""
    directory.mkdir(parents=True, exist_ok=True)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    atomic_write_bytes(weights_path, buffer.getvalue())
    atomic_write_text(config_path, json.dumps(model_spec(model), indent=2))
    return config_path, weights_path


def load_model_files(directory: Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model through the registry and load its weights with weights_only=True."""
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not config_path.is_file() or not weights_path.is_file():
        raise DataError(f"{directory}: not a latent model (expected {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        spec = json.loads(config_path.read_text())
        name, config = spec["name"], spec["config"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{config_path}: malformed model config ({exc!r})") from None
    try:
        model = create_model(name, **config)
    except LatentError as exc:  # an unknown model or parameter: the file is what is wrong, not the config
        raise DataError(f"{config_path}: {str(exc).removeprefix('model.name: ')}") from None
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f"{config_path}: malformed model config ({' '.join(str(exc).split())[:300]})") from None
    try:
        state = torch.load(weights_path, map_location=map_location, weights_only=True)
        model.load_state_dict(state)
    except pickle.UnpicklingError as exc:  # weights_only refused it: not plain tensors (perhaps pickled code)
        raise DataError(
            f"{weights_path}: cannot load weights: not a file of plain tensors ({_unpickler_reason(exc)}); "
            "refused without running anything in it"
        ) from None
    except Exception as exc:  # corrupt, truncated, or not the model's weights
        raise DataError(f"{weights_path}: cannot load weights ({' '.join(str(exc).split())[:300]})") from None
    return model.eval()


def _unpickler_reason(exc: Exception) -> str:
    """The one informative sentence of torch's weights_only error (the rest is advice to turn the check off)."""
    text = " ".join(str(exc).split())
    text = re.sub(r"^Weights only load failed\..*?trusted source\.\s*", "", text)
    text = re.sub(r"^Please file an issue.*?WeightsUnpickler error:\s*", "", text)
    return text.split(" Check the documentation")[0].strip()[:200]


def load_logged_model(model_uri: str, tracking_uri: str | None, map_location: str | torch.device = "cpu") -> nn.Module:
    """The full model (encoder and decoder) behind an MLflow model URI, or behind a local model directory."""
    local = Path(model_uri)
    if local.is_dir():
        return load_model_files(local, map_location)
    if tracking_uri is None:
        raise DataError(f"model {model_uri!r}: not a local model directory, and MLflow tracking is off")
    from latent.tracking import download_model_dir

    with tempfile.TemporaryDirectory(prefix="latent-model-") as tmp:  # the weights are in memory once loaded
        model_dir = download_model_dir(model_uri, tracking_uri, Path(tmp))
        return load_model_files(model_dir / "extra_files", map_location)
