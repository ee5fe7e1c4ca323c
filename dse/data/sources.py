"""Where dataset files come from: a local folder, the cache, or a checksummed download.

Lookup order for dataset D: `--data-dir` (the folder itself or its D/ subfolder), then
`$DSE_DATA_DIR/D/`, then the cache (`$DSE_CACHE_DIR` or `~/.cache/dse`)/D/. A folder of the
user's holding part of the files, or a name there that is no file (a directory, a broken
link), is an error rather than a reason to use another copy. Missing files are downloaded
into the cache from the public mirrors, each verified by the MD5 of the file as the mirror
serves it. `DSE_OFFLINE=1` skips the download.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from dse.errors import DataError, option

DOWNLOAD_TIMEOUT_S = 10


@dataclass(frozen=True)
class RemoteFile:
    name: str  # as served (gzipped)
    md5: str  # of the served file


@dataclass(frozen=True)
class Source:
    files: dict[str, RemoteFile]  # role (train_images, ...) -> file
    mirrors: tuple[str, ...]


_IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

SOURCES: dict[str, Source] = {
    "mnist": Source(
        files={
            role: RemoteFile(name, md5)
            for (role, name), md5 in zip(
                _IDX_NAMES.items(),
                [
                    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "d53e105ee54ea40749a09fcbcd1e9432",
                    "9fb629c4189551a2d022fa330f9573f3",
                    "ec29112dd5afa0611ce80d1b7f02629c",
                ],
                strict=True,
            )
        },
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
    ),
    "fashion_mnist": Source(
        files={
            role: RemoteFile(name, md5)
            for (role, name), md5 in zip(
                _IDX_NAMES.items(),
                [
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    "25c81989df183df01b3e8a0aad5dffbe",
                    "bef4ecab320f06d8554ea6380940ec79",
                    "bb300cfdad3c16e7a12a480ee83cd310",
                ],
                strict=True,
            )
        },
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    ),
    "smallnorb": Source(
        files={
            "train_images": RemoteFile(
                "smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat.gz",
                "66054832f9accfe74a0f4c36a75bc0a2",
            ),
            "train_labels": RemoteFile(
                "smallnorb-5x46789x9x18x6x2x96x96-training-cat.mat.gz",
                "23c8b86101fbf0904a000b43d3ed2fd9",
            ),
            "test_images": RemoteFile(
                "smallnorb-5x01235x9x18x6x2x96x96-testing-dat.mat.gz",
                "e4ad715691ed5a3a5f138751a4ceb071",
            ),
            "test_labels": RemoteFile(
                "smallnorb-5x01235x9x18x6x2x96x96-testing-cat.mat.gz",
                "5aa791cd7e6016cf957ce9bdb93b8603",
            ),
        },
        mirrors=("https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/",),
    ),
}


def cache_dir() -> Path:
    root = os.environ.get("DSE_CACHE_DIR") or Path.home() / ".cache" / "dse"
    return Path(root)


def candidate_dirs(dataset: str, data_dir: str | Path | None) -> list[Path]:
    dirs: list[Path] = []
    if data_dir:
        dirs += [Path(data_dir) / dataset, Path(data_dir)]
    if os.environ.get("DSE_DATA_DIR"):
        dirs.append(Path(os.environ["DSE_DATA_DIR"]) / dataset)
    dirs.append(cache_dir() / dataset)
    return dirs


def _local(folder: Path, remote: RemoteFile) -> Path | None:
    """The file in folder, gzipped as served or already decompressed. A name that is there
    but is no readable file (a directory, a broken link) is a DataError naming it: passed
    over, another copy of the dataset would be used without a word."""
    for name in (remote.name, remote.name.removesuffix(".gz")):
        path = folder / name
        if path.is_file():
            return path
        if os.path.lexists(path):
            raise DataError(f"{path}: {_not_a_file(path)}")
    return None


def _not_a_file(path: Path) -> str:
    if path.is_symlink() and not path.exists():
        return f"a broken symbolic link (to {os.readlink(path)}), not a file"
    if path.is_dir():
        return "a directory, not a file"
    return "not a regular file"


def _found_in(dataset: str, folder: Path) -> dict[str, Path] | None:
    """The dataset's files by role in folder; None when it holds none of them. A folder the
    user named that holds part of them is an error naming the missing ones, not a reason to
    use another copy."""
    files = SOURCES[dataset].files
    found = {role: _local(folder, remote) for role, remote in files.items()}
    if all(found.values()):
        return found  # type: ignore[return-value]
    if any(found.values()):
        missing = ", ".join(files[role].name for role, path in found.items() if path is None)
        raise DataError(f"{folder} lacks {dataset}'s {missing}")
    return None


def _in_data_dir(dataset: str, data_dir: Path) -> dict[str, Path] | None:
    """A given data folder is used, not silently another folder's copy: it must be a folder,
    and one that holds part of the dataset's files (itself or its dataset/ subfolder) must
    hold them all."""
    if data_dir.exists() and not data_dir.is_dir():
        raise DataError(f"{option('data_dir')} {data_dir}: not a directory")
    if not data_dir.is_dir():
        raise DataError(f"{option('data_dir')} {data_dir}: no such directory")
    for folder in (data_dir / dataset, data_dir):
        try:
            if found := _found_in(dataset, folder):
                return found
        except DataError as exc:
            raise DataError(f"{option('data_dir')} {data_dir}: {exc}") from None
    return None


def _in_env_dir(dataset: str) -> dict[str, Path] | None:
    """$DSE_DATA_DIR/dataset/, held to the same rule as a given data folder."""
    root = os.environ.get("DSE_DATA_DIR")
    try:
        return _found_in(dataset, Path(root) / dataset) if root else None
    except DataError as exc:
        raise DataError(f"DSE_DATA_DIR {root}: {exc}") from None


def locate(dataset: str, data_dir: str | Path | None = None) -> dict[str, Path]:
    """Paths of the dataset's files by role, downloading into the cache when missing."""
    source = SOURCES[dataset]
    given = _in_data_dir(dataset, Path(data_dir)) if data_dir else None
    if user_copy := given or _in_env_dir(dataset):
        return user_copy
    dirs = candidate_dirs(dataset, data_dir)
    cache = cache_dir() / dataset  # a download may have stopped part way: the rest is fetched
    found = {role: _local(cache, remote) for role, remote in source.files.items()}
    if all(found.values()):
        return found  # type: ignore[return-value]
    names = ", ".join(f.name for f in source.files.values())
    where = ", ".join(str(d) for d in dirs)
    if os.environ.get("DSE_OFFLINE") == "1":
        raise DataError(
            f"{dataset}: files not found ({names}); looked in {where}; offline (DSE_OFFLINE=1): "
            f"put them in $DSE_DATA_DIR/{dataset}/ or pass {option('data_dir')}"
        )
    try:
        return {role: download(source, remote, cache) for role, remote in source.files.items()}
    except DataError as exc:
        raise DataError(
            f"{dataset}: files not found ({names}); looked in {where}; download failed: {exc}; "
            f"put them in $DSE_DATA_DIR/{dataset}/ or pass {option('data_dir')}"
        ) from None


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(source: Source, remote: RemoteFile, folder: Path) -> Path:
    """Fetch one file into folder from the first mirror that serves it with the right MD5."""
    existing = _local(folder, remote)
    if existing is not None:
        return existing
    errors = []
    for mirror in source.mirrors:
        url = mirror + remote.name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
            with (
                os.fdopen(fd, "wb") as out,
                urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,
            ):
                while chunk := response.read(1 << 20):
                    out.write(chunk)
            if (md5 := md5_of(Path(tmp))) != remote.md5:
                os.unlink(tmp)
                errors.append(f"{url}: checksum {md5} != {remote.md5}")
                continue
            final = folder / remote.name
            os.replace(tmp, final)
            return final
        except OSError as exc:  # URLError and timeouts are OSErrors
            if "tmp" in locals() and os.path.exists(tmp):
                os.unlink(tmp)
            errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
    raise DataError("; ".join(errors))
