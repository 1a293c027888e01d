"""Progress events from long-running library work, shown by whoever drives it (the CLI uses rich).

The library never prints: it reports to the installed reporter, a no-op unless a front end installs one.
"""

from __future__ import annotations

from typing import Protocol


class ProgressReporter(Protocol):
    def start(self, key: str, description: str, total: int | None) -> None: ...
    def advance(self, key: str, steps: int = 1, info: str = "") -> None: ...
    def finish(self, key: str) -> None: ...


class _Silent:
    def start(self, key: str, description: str, total: int | None) -> None:
        pass

    def advance(self, key: str, steps: int = 1, info: str = "") -> None:
        pass

    def finish(self, key: str) -> None:
        pass


_reporter: ProgressReporter = _Silent()


def set_reporter(reporter: ProgressReporter | None) -> None:
    """Install a reporter for this process (tasks may run on other threads, so this is process-wide)."""
    global _reporter
    _reporter = reporter if reporter is not None else _Silent()


def reporter() -> ProgressReporter:
    return _reporter
