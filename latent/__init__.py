"""latent: turn raw datasets into learned latent spaces and analyst-ready latent tables."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("latent")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
