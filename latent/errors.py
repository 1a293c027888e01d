"""User-facing errors: each carries one line that says what was wrong and where."""

from __future__ import annotations


class LatentError(Exception):
    """An error caused by input (config, data, arguments); the CLI prints it as one line."""


class ConfigError(LatentError):
    """A configuration file or override that does not validate."""


class DataError(LatentError):
    """A dataset, table or model that is missing, corrupt or of the wrong shape."""


class TrainingError(LatentError):
    """Training stopped for a reason the user must act on (e.g. a non-finite loss)."""
