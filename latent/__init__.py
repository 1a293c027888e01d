"""latent: turn raw datasets into learned latent spaces and analyst-ready latent tables."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # Looked up on first use: reading the installed metadata costs more than the rest of `import latent`.
    if name != "__version__":
        raise AttributeError(f"module 'latent' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("latent")
    except PackageNotFoundError:  # running from a source tree that was never installed
        value = "0.0.0+unknown"
    globals()["__version__"] = value
    return value
