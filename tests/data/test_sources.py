"""Downloads against a real HTTP server on 127.0.0.1 serving files in the real formats."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest

from dse.data import sources
from dse.data.sources import RemoteFile, Source, locate, md5_of
from dse.errors import DataError
from tests.conftest import write_idx_dataset


@pytest.fixture
def mirror(tmp_path):
    """A folder served over HTTP; yields (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def _serve_dataset(folder: Path, url: str, monkeypatch, corrupt: str | None = None) -> Source:
    write_idx_dataset(folder, n_train=40, n_test=10)
    files = {}
    for role, remote in sources.SOURCES["mnist"].files.items():
        md5 = md5_of(folder / remote.name)
        files[role] = RemoteFile(remote.name, "0" * 32 if role == corrupt else md5)
    source = Source(files=files, mirrors=("http://127.0.0.1:9/missing/", url))  # first mirror fails
    monkeypatch.setitem(sources.SOURCES, "mnist", source)
    monkeypatch.delenv("DSE_OFFLINE")
    monkeypatch.delenv("DSE_DATA_DIR", raising=False)
    return source


def test_download_into_cache_verified(mirror, monkeypatch, tmp_path):
    folder, url = mirror
    _serve_dataset(folder, url, monkeypatch)
    found = locate("mnist")
    cache = sources.cache_dir() / "mnist"
    assert all(path.parent == cache for path in found.values())
    assert md5_of(found["train_images"]) == md5_of(folder / found["train_images"].name)
    # a second lookup uses the cache, even with the server gone
    monkeypatch.setitem(
        sources.SOURCES, "mnist", Source(sources.SOURCES["mnist"].files, ("http://127.0.0.1:9/",))
    )
    assert locate("mnist") == found


def test_checksum_mismatch_is_refused_and_not_kept(mirror, monkeypatch):
    folder, url = mirror
    _serve_dataset(folder, url, monkeypatch, corrupt="test_labels")
    with pytest.raises(
        DataError, match=r"t10k-labels-idx1-ubyte.gz: checksum [0-9a-f]{32} != 0{32}"
    ):
        locate("mnist")
    cached = sorted(p.name for p in (sources.cache_dir() / "mnist").iterdir())
    assert "t10k-labels-idx1-ubyte.gz" not in cached and not any(
        n.endswith(".part") for n in cached
    )


def test_unreachable_mirrors_give_one_clear_error(monkeypatch):
    source = Source(sources.SOURCES["mnist"].files, ("http://127.0.0.1:9/",))
    monkeypatch.setitem(sources.SOURCES, "mnist", source)
    monkeypatch.delenv("DSE_OFFLINE")
    monkeypatch.delenv("DSE_DATA_DIR", raising=False)
    with pytest.raises(DataError) as err:
        locate("mnist")
    assert "mnist: files not found" in str(err.value) and "download failed" in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_data_dir_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("DSE_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="data_dir .*nowhere: no such directory"):
        locate("mnist", tmp_path / "nowhere")


def test_a_data_dir_that_is_a_file_says_so(tmp_path):
    (tmp_path / "data").write_text("x")
    with pytest.raises(DataError, match=r"data_dir .*data: not a directory$"):
        locate("mnist", tmp_path / "data")


@pytest.mark.parametrize("where", ["mnist", "."])
def test_a_data_dir_missing_one_file_is_not_passed_over(tmp_path, monkeypatch, where):
    """Not silently $DSE_DATA_DIR's copy when the folder given holds only part of the files."""
    write_idx_dataset(tmp_path / "elsewhere" / "mnist", n_train=20, n_test=10)
    monkeypatch.setenv("DSE_DATA_DIR", str(tmp_path / "elsewhere"))
    folder = write_idx_dataset(tmp_path / "given" / where, n_train=20, n_test=10)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as err:
        locate("mnist", tmp_path / "given")
    assert str(err.value) == (
        f"data_dir {tmp_path / 'given'}: {folder} lacks mnist's t10k-labels-idx1-ubyte.gz"
    )


def test_dse_data_dir_missing_one_file_is_not_passed_over(tmp_path, monkeypatch):
    """$DSE_DATA_DIR/mnist/ with three of the four files: not silently the cache's copy."""
    write_idx_dataset(sources.cache_dir() / "mnist", n_train=20, n_test=10)
    folder = write_idx_dataset(tmp_path / "data" / "mnist", n_train=20, n_test=10)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("DSE_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(DataError) as err:
        locate("mnist")
    assert str(err.value) == (
        f"DSE_DATA_DIR {tmp_path / 'data'}: {folder} lacks mnist's t10k-labels-idx1-ubyte.gz"
    )


def _spoil(path: Path, how: str) -> str:
    """Put something that is no readable file at path; returns how dse names it."""
    path.unlink()
    if how == "directory":
        path.mkdir()
        return "a directory, not a file"
    path.symlink_to(path.parent / "gone")  # unreadable as root too: its target is not there
    return f"a broken symbolic link (to {path.parent / 'gone'}), not a file"


@pytest.mark.parametrize("how", ["directory", "broken-link"])
@pytest.mark.parametrize("given", ["data_dir", "DSE_DATA_DIR", "cache"])
def test_a_name_that_is_no_file_is_named(tmp_path, monkeypatch, how, given):
    """A dataset file that is a folder or a dangling link is named with what it is, not
    counted missing (and the dataset taken from elsewhere, or downloaded over it)."""
    folder = write_idx_dataset(tmp_path / "data" / "mnist", n_train=20, n_test=10)
    if given == "cache":
        monkeypatch.setenv("DSE_CACHE_DIR", str(tmp_path / "data"))
        monkeypatch.delenv("DSE_DATA_DIR", raising=False)
    else:  # a complete copy in the cache, which must not be used instead
        write_idx_dataset(sources.cache_dir() / "mnist", n_train=20, n_test=10)
        monkeypatch.setenv("DSE_DATA_DIR", str(tmp_path / "data"))
    what = _spoil(folder / "train-images-idx3-ubyte.gz", how)
    with pytest.raises(DataError) as err:
        locate("mnist", tmp_path / "data" if given == "data_dir" else None)
    prefix = {"data_dir": "data_dir", "DSE_DATA_DIR": "DSE_DATA_DIR", "cache": ""}[given]
    named = f"{folder / 'train-images-idx3-ubyte.gz'}: {what}"
    assert str(err.value) == (f"{prefix} {tmp_path / 'data'}: {named}" if prefix else named)
