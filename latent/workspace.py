"""The workspace: one directory holding everything a run writes, and atomic publishing into it."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from latent.errors import DataError, LatentError

TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class Workspace:
    """Paths of every stage output under one root (see the README's workspace layout)."""

    root: Path

    @classmethod
    def at(cls, path: str | Path) -> Workspace:
        root = Path(path).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        return cls(root)

    def raw_dir(self, fingerprint: str) -> Path:
        return self.root / "raw" / plain_name(fingerprint, "source fingerprint")

    def dataset_dir(self, dataset_version: str) -> Path:
        return self.root / "datasets" / plain_name(dataset_version, "dataset version")

    def model_dir(self, run_id: str) -> Path:
        return self.root / "models" / plain_name(run_id, "run id")

    @property
    def latents_root(self) -> Path:
        """`latents/`: one `<dataset-version>/<model-version>/` table under it per pair."""
        return self.root / "latents"

    def latent_dir(self, dataset_version: str, model_version: str) -> Path:
        dataset, model = plain_name(dataset_version, "dataset version"), plain_name(model_version, "model version")
        return self.latents_root / dataset / model

    def report_dir(self, run_id: str) -> Path:
        return self.root / "reports" / plain_name(run_id, "run id")

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.root / "mlartifacts"


_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+=-]*")


def plain_name(name: str, what: str) -> str:
    """A name that becomes one directory of the workspace: never a path, `.` or `..` (a model version taken from
    a URI like `dir/.` once named the dataset's whole `latents/<version>` folder, and replacing it lost every
    table in it)."""
    if not _PLAIN_NAME.fullmatch(name):
        raise DataError(f"{what} {name!r} cannot name a directory in the workspace (expected letters, digits, _.@+=-)")
    return name


def is_temporary(path: Path) -> bool:
    """Readers listing the workspace skip directories that are still being written."""
    return path.name.startswith(TMP_PREFIX)


_HOST = socket.gethostname()
_OWNED = re.compile(r"-(\d+)@([^/]+)$")


def _temp_sibling(path: Path, kind: str = "") -> Path:
    """A hidden sibling of path named for its owner (`.tmp-<name>-<kind><random>-<pid>@<host>`), so that what a
    killed process left half-written can be told from what a live one is still writing."""
    return path.parent / f"{TMP_PREFIX}{path.name}-{kind}{uuid.uuid4().hex[:8]}-{os.getpid()}@{_HOST}"


def _owner_gone(name: str) -> bool:
    match = _OWNED.search(name)
    if match is None or match.group(2) != _HOST:
        return False
    import psutil

    return not psutil.pid_exists(int(match.group(1)))


def sweep_stale(path: Path) -> list[Path]:
    """Remove the temporaries of path (staging directories, partial files) whose writer on this host is gone,
    e.g. killed with SIGKILL mid-write. Readers never saw them; this only gives back the disk space."""
    prefix = f"{TMP_PREFIX}{path.name}-"
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if entry.name.startswith(prefix) and _owner_gone(entry.name):
            removed.append(_remove_entry(entry))
    return removed


def _remove_entry(entry: os.DirEntry) -> Path:
    if entry.is_dir(follow_symlinks=False):
        shutil.rmtree(entry.path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
    return Path(entry.path)


def sweep_workspace(workspace: Workspace, max_depth: int = 4) -> list[Path]:
    """Remove every temporary in the workspace (staging directories, partial files, scratch) whose writer on this
    host is gone, wherever it lies: `publish_dir` sweeps only the siblings of what it publishes, so a report or
    table killed mid-write and never republished would otherwise keep its disk space. MLflow's artifact store is not
    ours to walk; directories deeper than `max_depth` hold no staging of ours."""
    removed: list[Path] = []

    def walk(directory: str, depth: int) -> None:
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return
        for entry in entries:
            if entry.name.startswith(TMP_PREFIX):
                if _owner_gone(entry.name):
                    removed.append(_remove_entry(entry))
            elif (
                depth < max_depth and entry.is_dir(follow_symlinks=False) and entry.path != str(workspace.artifact_root)
            ):
                walk(entry.path, depth + 1)

    walk(str(workspace.root), 1)
    return removed


def fsync_tree(path: Path) -> None:
    for dirpath, _, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2); False where the platform cannot."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def remove_version(path: Path, marker: str | None) -> None:
    """Delete a published directory, its marker file first: a reader that still sees the marker after listing
    the directory knows its listing was complete (see `tables._read_snapshot`)."""
    if marker:
        (path / marker).unlink(missing_ok=True)
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def publish_dir(final: Path, replace: bool = False, marker: str | None = None) -> Iterator[Path]:
    """Yield a sibling staging directory; on success it becomes `final` in one rename.

    A reader that opens the directory sees either no directory, the previous one, or the complete new one, never
    a mix: a replacement is one atomic exchange (Linux renameat2). On error the staging directory is removed and
    `final` is left as it was.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(final)
    staging = _temp_sibling(final)
    staging.mkdir()
    try:
        yield staging
        fsync_tree(staging)
        if final.exists():
            if not replace:
                raise FileExistsError(f"{final} already exists")
            if _exchange(staging, final):
                remove_version(staging, marker)  # staging now holds the old contents
            else:
                old = _temp_sibling(final, "old-")
                os.rename(final, old)
                os.rename(staging, final)
                remove_version(old, marker)
        else:
            os.rename(staging, final)
        _fsync_dir(final.parent)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise _disk_full(final) from None
        raise


@contextlib.contextmanager
def scratch_dir(near: Path) -> Iterator[Path]:
    """A private directory beside `near` for work whose result is not kept whole; removed on exit (or swept with
    the other temporaries of `near` once its owner is gone, if the process is killed)."""
    near.parent.mkdir(parents=True, exist_ok=True)
    scratch = _temp_sibling(near, "scratch-")
    scratch.mkdir()
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def link_or_copy(src: Path, dst: Path) -> None:
    """Make dst the same file as src: a hard link (no bytes copied; each name keeps the file alive, so either
    folder can be deleted without touching the other), or a copy where the file system cannot link."""
    try:
        os.link(src, dst)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        shutil.copy2(src, dst)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old content or the new, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    tmp = _temp_sibling(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise _disk_full(path) from None
        raise


def _disk_full(path: Path) -> LatentError:
    # Not retried: a full disk does not empty itself in the seconds between retries.
    return LatentError(
        f"{path}: no space left on the device while writing it; nothing was published and the previous version, "
        "if any, is intact (free some space and run again)"
    )


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
