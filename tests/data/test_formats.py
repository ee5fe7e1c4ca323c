from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from dse.data.formats import check_header, read_idx, read_norb, write_idx, write_norb
from dse.errors import DataError


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_idx_round_trip_raw_and_gz(tmp_path, name):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / name, array)
    assert np.array_equal(read_idx(tmp_path / name), array)


def test_idx_header_is_big_endian_with_type_and_ndim(tmp_path):
    write_idx(tmp_path / "f", np.zeros((258, 5), dtype=np.uint8))
    raw = (tmp_path / "f").read_bytes()
    assert raw[:4] == bytes([0, 0, 0x08, 2])
    assert struct.unpack(">II", raw[4:12]) == (258, 5)


def test_idx_labels_1d(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    write_idx(tmp_path / "labels.gz", labels)
    assert read_idx(tmp_path / "labels.gz").tolist() == [3, 1, 4, 1, 5]


def test_truncated_idx_is_a_clear_error(tmp_path):
    write_idx(tmp_path / "f", np.zeros((10, 28, 28), dtype=np.uint8))
    raw = (tmp_path / "f").read_bytes()
    (tmp_path / "f").write_bytes(raw[:-100])
    with pytest.raises(
        DataError,
        match=r"f: IDX file truncated: header says \(10, 28, 28\) \(7840 bytes\), found 7740",
    ):
        read_idx(tmp_path / "f")


def test_wrong_idx_magic_is_a_clear_error(tmp_path):
    (tmp_path / "f").write_bytes(b"\x12\x34\x08\x03" + bytes(100))
    with pytest.raises(DataError, match="not an IDX file: bad magic number 0x12340803"):
        read_idx(tmp_path / "f")


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    path = tmp_path / "f.gz"
    path.write_bytes(
        gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 1000) + bytes(1000))[:-30]
    )
    with pytest.raises(DataError, match="f.gz: truncated gzip file: Compressed file ended"):
        read_idx(path)


RENAME = "; it is uncompressed: name it f"


@pytest.mark.parametrize(
    "content, hint",
    [
        (b"<html>404 Not Found</html>\n", ""),  # a mirror's error page saved as the file
        (bytes([0, 0, 8, 1]) + struct.pack(">I", 3) + bytes(3), RENAME),
        (struct.pack("<II", 0x1E3D4C55, 1) + struct.pack("<3i", 3, 1, 1) + bytes(3), RENAME),
    ],
    ids=["html", "raw-idx", "raw-norb"],
)
def test_a_gz_that_is_not_gzip_says_so(tmp_path, content, hint):
    """Not Python's 'Not a gzipped file (b'\\x00\\x00')': dse reads a file as its name says."""
    (tmp_path / "f.gz").write_bytes(content)
    for read in (read_idx, read_norb, lambda p: check_header(p, "idx")):
        with pytest.raises(DataError) as err:
            read(tmp_path / "f.gz")
        assert str(err.value) == f"{tmp_path / 'f.gz'}: not gzip-compressed, though named .gz{hint}"


@pytest.mark.parametrize("read", [read_idx, read_norb, lambda p: check_header(p, "norb")])
def test_a_gzip_file_without_the_gz_name_says_what_to_name_it(tmp_path, read):
    write_idx(tmp_path / "f.gz", np.zeros((2, 3), dtype=np.uint8))
    (tmp_path / "f.gz").rename(tmp_path / "f")
    with pytest.raises(DataError) as err:
        read(tmp_path / "f")
    assert (
        str(err.value) == f"{tmp_path / 'f'}: gzip-compressed, though not named .gz: name it f.gz"
    )


def test_a_corrupt_middle_is_found_when_the_header_check_reads_the_whole_file(tmp_path):
    """The size in a gzip trailer vouches for the length, not the bytes: `dse run` reads the
    file through (CRC) before it starts, or every trial would fail on it."""
    write_idx(tmp_path / "f.gz", np.arange(20000, dtype=np.uint8).reshape(20, 1000) % 251)
    raw = bytearray((tmp_path / "f.gz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "f.gz").write_bytes(bytes(raw))
    assert check_header(tmp_path / "f.gz", "idx") == ((20, 1000), np.dtype(np.uint8))
    for read in (read_idx, lambda p: check_header(p, "idx", whole=True)):
        with pytest.raises(DataError, match=r"f.gz: cannot read: (CRC check failed|.*invalid)"):
            read(tmp_path / "f.gz")


def test_norb_round_trip_4d_uint8(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (3, 2, 96, 96)).astype(np.uint8)
    write_norb(tmp_path / "dat.mat", array)
    assert np.array_equal(read_norb(tmp_path / "dat.mat"), array)


def test_norb_1d_int32_stores_three_dims(tmp_path):
    labels = np.array([0, 4, 2], dtype=np.int32)
    write_norb(tmp_path / "cat.mat.gz", labels)
    with gzip.open(tmp_path / "cat.mat.gz") as f:
        raw = f.read()
    magic, ndim, d0, d1, d2 = struct.unpack("<IIiii", raw[:20])
    assert (magic, ndim, d0, d1, d2) == (0x1E3D4C54, 1, 3, 1, 1)
    assert read_norb(tmp_path / "cat.mat.gz").tolist() == [0, 4, 2]


def test_norb_wrong_magic(tmp_path):
    (tmp_path / "x.mat").write_bytes(struct.pack("<II", 0xDEADBEEF, 1) + bytes(40))
    with pytest.raises(DataError, match="x.mat: not a smallNORB file: bad magic number 0xDEADBEEF"):
        read_norb(tmp_path / "x.mat")


def test_norb_truncated(tmp_path):
    write_norb(tmp_path / "d.mat", np.zeros((4, 2, 96, 96), dtype=np.uint8))
    raw = (tmp_path / "d.mat").read_bytes()
    (tmp_path / "d.mat").write_bytes(raw[:-1])
    with pytest.raises(DataError, match="smallNORB file truncated"):
        read_norb(tmp_path / "d.mat")


@pytest.mark.parametrize("name", ["huge-idx3-ubyte", "huge-idx3-ubyte.gz"])
def test_idx_dims_past_64_bits_are_counted_exactly(tmp_path, name):
    """2**21 * 2**21 * 2**22 elements wrapped to 0 in int64: an empty file then passed as
    complete and numpy's reshape failed."""
    raw = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2**21, 2**21, 2**22)
    path = tmp_path / name
    path.write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    for read in (read_idx, lambda p: check_header(p, "idx")):
        with pytest.raises(DataError, match=rf"truncated: .* \({2**64} bytes\), found 0 bytes"):
            read(path)
