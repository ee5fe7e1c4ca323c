"""Readers for the two binary array formats the datasets ship in: IDX and smallNORB's .mat.

Both check the header against the file size, so a truncated or foreign file is a DataError
naming the file, never a numpy reshape traceback. A `.gz` file is decompressed on the fly.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from dse.errors import DataError

# IDX: big-endian; magic = 0x00 0x00 <type> <ndim>.
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# smallNORB: little-endian int32 magic, int32 ndim, max(ndim, 3) int32 dims, then the data.
NORB_DTYPES = {
    0x1E3D4C55: np.dtype(np.uint8),
    0x1E3D4C54: np.dtype("<i4"),
    0x1E3D4C51: np.dtype("<f4"),
    0x1E3D4C53: np.dtype("<f8"),
    0x1E3D4C56: np.dtype("<i2"),
}


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when the name ends in .gz."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise _read_failure(path, exc) from None


def _head(path: Path, n: int) -> bytes:
    """The first n bytes (decompressed), without reading the rest."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read(n)
        with open(path, "rb") as f:
            return f.read(n)
    except (OSError, EOFError, zlib.error) as exc:
        raise _read_failure(path, exc) from None


GZIP_MAGIC = b"\x1f\x8b"


def _read_failure(path: Path, exc: Exception) -> DataError:
    """Why the file cannot be read, in a line. A .gz that is not gzip says so, and how to name
    it when it is the uncompressed format (dse reads both; the name decides which)."""
    if isinstance(exc, gzip.BadGzipFile):
        with open(path, "rb") as f:
            start = f.read(4)
        if not start.startswith(GZIP_MAGIC):
            rename = f"; it is uncompressed: name it {path.stem}" if _looks_raw(start) else ""
            return DataError(f"{path}: not gzip-compressed, though named .gz{rename}")
    if isinstance(exc, EOFError):  # a download or copy cut short
        return DataError(f"{path}: truncated gzip file: {exc}")
    return DataError(f"{path}: cannot read: {exc}")


def _looks_raw(start: bytes) -> bool:
    """Whether the bytes start an uncompressed IDX or smallNORB file."""
    idx = start[:2] == b"\0\0" and len(start) > 2 and start[2] in IDX_DTYPES
    norb = len(start) == 4 and struct.unpack("<I", start)[0] in NORB_DTYPES
    return idx or norb


def _bad_magic(path: Path, what: str, magic: str, start: bytes) -> DataError:
    if start.startswith(GZIP_MAGIC):  # a .gz saved under the uncompressed name
        return DataError(f"{path}: gzip-compressed, though not named .gz: name it {path.name}.gz")
    return DataError(f"{path}: not {what} file: bad magic number 0x{magic}")


def _gzip_trailer_size(path: Path) -> int:
    """The size gzip records in its trailer: of the last member, modulo 2**32."""
    try:
        with open(path, "rb") as f:
            f.seek(-4, 2)
            return struct.unpack("<I", f.read(4))[0]
    except OSError as exc:
        raise _read_failure(path, exc) from None


def _counted_size(path: Path) -> int:
    total = 0
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                total += len(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise _read_failure(path, exc) from None
    return total


def check_header(
    path: str | Path, kind: str, whole: bool = False
) -> tuple[tuple[int, ...], np.dtype]:
    """Dims and dtype of an IDX ("idx") or smallNORB ("norb") file, checked against the file's
    size as the readers do, without keeping the data: the runner checks before it starts.
    A .gz is decompressed through when `whole` (its CRC checked too: a corrupt middle would
    fail every trial) or when its trailer does not vouch for the size."""
    path = Path(path)
    dims, dtype, header = (_idx_header if kind == "idx" else _norb_header)(path, _head(path, 1024))
    expected = math.prod(dims) * dtype.itemsize
    if path.suffix != ".gz":
        found = path.stat().st_size - header
    elif not whole and header + expected < 2**32 and _gzip_trailer_size(path) == header + expected:
        found = expected  # the trailer agrees: no need to decompress it all
    else:
        found = _counted_size(path) - header
    if found != expected:
        _size_error(path, "IDX" if kind == "idx" else "smallNORB", dims, expected, found)
    return dims, dtype


def _size_error(path: Path, what: str, dims: tuple[int, ...], expected: int, found: int):
    state = "truncated" if found < expected else "has trailing bytes"
    raise DataError(
        f"{path}: {what} file {state}: header says {dims} ({expected} bytes), found {found} bytes"
    )


def _idx_header(path: Path, raw: bytes) -> tuple[tuple[int, ...], np.dtype, int]:
    if len(raw) < 4:
        raise DataError(f"{path}: not an IDX file: only {len(raw)} bytes")
    zero1, zero2, type_code, ndim = raw[:4]
    if zero1 != 0 or zero2 != 0 or type_code not in IDX_DTYPES or ndim == 0:
        raise _bad_magic(path, "an IDX", raw[:4].hex(), raw)
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    return dims, IDX_DTYPES[type_code], header


def read_idx(path: str | Path) -> np.ndarray:
    path = Path(path)
    raw = read_bytes(path)
    dims, dtype, header = _idx_header(path, raw)
    expected = math.prod(dims) * dtype.itemsize
    if len(raw) - header != expected:
        _size_error(path, "IDX", dims, expected, len(raw) - header)
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _norb_header(path: Path, raw: bytes) -> tuple[tuple[int, ...], np.dtype, int]:
    if len(raw) < 8:
        raise DataError(f"{path}: not a smallNORB file: only {len(raw)} bytes")
    magic, ndim = struct.unpack("<iI", raw[:8])
    magic &= 0xFFFFFFFF
    if magic not in NORB_DTYPES:
        raise _bad_magic(path, "a smallNORB", f"{magic:08X}", raw)
    if not 1 <= ndim <= 16:
        raise DataError(f"{path}: not a smallNORB file: {ndim} dimensions")
    stored = max(ndim, 3)  # the format always stores at least 3 dims
    header = 8 + 4 * stored
    if len(raw) < header:
        raise DataError(f"{path}: truncated smallNORB header")
    dims = struct.unpack(f"<{stored}i", raw[8:header])[:ndim]
    if any(d < 0 for d in dims):
        raise DataError(f"{path}: not a smallNORB file: negative dimension in {dims}")
    return dims, NORB_DTYPES[magic], header


def read_norb(path: str | Path) -> np.ndarray:
    path = Path(path)
    raw = read_bytes(path)
    dims, dtype, header = _norb_header(path, raw)
    expected = math.prod(dims) * dtype.itemsize
    if len(raw) - header != expected:
        _size_error(path, "smallNORB", dims, expected, len(raw) - header)
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write an IDX file (gzipped when the name ends in .gz). Tests and tools use it."""
    path = Path(path)
    codes = {np.dtype(v).str.lstrip("<>|="): k for k, v in IDX_DTYPES.items()}
    code = codes[np.dtype(array.dtype).str.lstrip("<>|=")]
    big = array.astype(IDX_DTYPES[code], copy=False)
    data = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data += big.tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(data)


def write_norb(path: str | Path, array: np.ndarray) -> None:
    """Write a smallNORB .mat file (gzipped when the name ends in .gz)."""
    path = Path(path)
    magic = {np.dtype(v).str.lstrip("<>|="): k for k, v in NORB_DTYPES.items()}
    code = magic[np.dtype(array.dtype).str.lstrip("<>|=")]
    dims = list(array.shape) + [1] * (3 - array.ndim)
    data = struct.pack("<II", code, array.ndim) + struct.pack(f"<{len(dims)}i", *dims)
    data += array.astype(NORB_DTYPES[code], copy=False).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(data)
