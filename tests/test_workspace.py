import os
import threading

import pytest

from latent.workspace import Workspace, atomic_write_bytes, is_temporary, publish_dir

pytestmark = pytest.mark.unit


def test_publish_dir_appears_complete_in_one_step(tmp_path):
    final = tmp_path / "table"
    with publish_dir(final) as staging:
        (staging / "a.txt").write_text("a")
        assert not final.exists()
        assert is_temporary(staging)
    assert (final / "a.txt").read_text() == "a"
    assert [p.name for p in tmp_path.iterdir()] == ["table"]


def test_failed_publish_keeps_the_previous_version_and_leaves_no_staging(tmp_path):
    final = tmp_path / "table"
    with publish_dir(final) as staging:
        (staging / "v").write_text("1")
    with pytest.raises(RuntimeError), publish_dir(final, replace=True) as staging:
        (staging / "v").write_text("2")
        raise RuntimeError("crash while writing")
    assert (final / "v").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["table"]


def _read(dir_fd: int, name: str) -> str:
    fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    with os.fdopen(fd) as fh:
        return fh.read()


def test_replace_swaps_versions_and_readers_never_see_a_mix(tmp_path):
    """A reader that opens the table directory once sees one version whole (or, if it is slow and the old
    version has been cleaned away, a clean 'not found'); never files of two versions."""
    final = tmp_path / "table"
    with publish_dir(final) as staging:
        (staging / "a").write_text("old")
        (staging / "b").write_text("old")
    seen: set[tuple[str, str]] = set()
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                dir_fd = os.open(final, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                seen.add((_read(dir_fd, "a"), _read(dir_fd, "b")))
            except FileNotFoundError:
                pass
            finally:
                os.close(dir_fd)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(30):
            with publish_dir(final, replace=True) as staging:
                (staging / "a").write_text(f"v{i}")
                (staging / "b").write_text(f"v{i}")
    finally:
        stop.set()
        thread.join()
    assert seen and all(a == b for a, b in seen), seen
    assert (final / "a").read_text() == "v29"


def test_publish_refuses_to_overwrite_unless_asked(tmp_path):
    final = tmp_path / "t"
    final.mkdir()
    with pytest.raises(FileExistsError), publish_dir(final):
        pass


def test_atomic_write_bytes_replaces_whole_file(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"one")
    atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_workspace_layout(tmp_path):
    ws = Workspace.at(tmp_path / "w")
    assert ws.dataset_dir("d1") == ws.root / "datasets" / "d1"
    assert ws.latent_dir("d1", "m1") == ws.root / "latents" / "d1" / "m1"
    assert ws.tracking_uri == f"sqlite:///{ws.root / 'mlflow.db'}"
