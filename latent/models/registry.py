"""Models by name: a decorator registers a model class with its config class; `create_model` builds one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from torch import nn

from latent.errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    model_cls: type[nn.Module]
    config_cls: type


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, config_cls: type) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def decorator(model_cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelEntry(name, model_cls, config_cls)
        model_cls.registry_name = name
        return model_cls

    return decorator


def available_models() -> list[str]:
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"model.name: unknown model {name!r}; expected one of: {', '.join(available_models())}"
        ) from None


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model from keyword arguments of its config (unknown ones are an error)."""
    entry = model_entry(name)
    known = {f.name for f in fields(entry.config_cls)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ConfigError(
            f"model {name!r} has no parameter(s) {', '.join(unknown)}; expected: {', '.join(sorted(known))}"
        )
    return entry.model_cls(entry.config_cls(**kwargs))
