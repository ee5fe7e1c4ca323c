from __future__ import annotations

import numpy as np
import pytest
import torch

from dse.config import DatasetConfig
from dse.data.datasets import check_files, load_dataset
from dse.data.formats import write_idx
from dse.data.sources import SOURCES
from dse.errors import DataError
from tests.conftest import write_idx_dataset, write_norb_dataset


def test_validation_split_is_held_out_and_seeded(digits_root):
    config = DatasetConfig(val_size=100)
    a = load_dataset(config, data_dir=digits_root)
    b = load_dataset(config, data_dir=digits_root)
    assert (len(a.train), len(a.val), len(a.test)) == (500, 100, 200)
    assert torch.equal(a.val.images, b.val.images)
    # validation and training images are disjoint parts of the training file
    train_rows = {bytes(x) for x in a.train.images.numpy().reshape(500, -1)}
    assert not any(bytes(x) in train_rows for x in a.val.images.numpy().reshape(100, -1))
    other = load_dataset(DatasetConfig(val_size=100, split_seed=1), data_dir=digits_root)
    assert not torch.equal(a.val.labels, other.val.labels)


def test_subsets_and_device_resident_uint8(digits_root):
    data = load_dataset(
        DatasetConfig(val_size=100, train_subset=64, test_subset=50), data_dir=digits_root
    )
    assert (len(data.train), len(data.test)) == (64, 50)
    assert data.train.images.dtype == torch.uint8 and data.train.images.shape[1:] == (1, 28, 28)
    assert data.train.labels.dtype == torch.int64 and data.input_shape == (1, 28, 28)
    assert data.info.pad == 2 and data.info.n_classes == 10


def test_raw_idx_files_and_dse_data_dir(tmp_path, monkeypatch):
    write_idx_dataset(tmp_path / "fashion_mnist", n_train=120, n_test=30, gz=False)
    monkeypatch.setenv("DSE_DATA_DIR", str(tmp_path))
    data = load_dataset(DatasetConfig(name="fashion_mnist", val_size=20))
    assert (len(data.train), len(data.val), len(data.test)) == (100, 20, 30)


def test_data_dir_comes_before_dse_data_dir(tmp_path, monkeypatch):
    write_idx_dataset(tmp_path / "a" / "mnist", n_train=110, n_test=10)
    write_idx_dataset(tmp_path / "b" / "mnist", n_train=130, n_test=10)
    monkeypatch.setenv("DSE_DATA_DIR", str(tmp_path / "b"))
    assert len(load_dataset(DatasetConfig(val_size=10), data_dir=tmp_path / "a").train) == 100
    assert len(load_dataset(DatasetConfig(val_size=10)).train) == 120


def test_image_label_count_mismatch(tmp_path):
    folder = write_idx_dataset(tmp_path / "mnist", n_train=50, n_test=10)
    write_idx(folder / SOURCES["mnist"].files["train_labels"].name, np.zeros(49, dtype=np.uint8))
    with pytest.raises(DataError, match="50 images but .*train-labels-idx1-ubyte.gz has 49 labels"):
        load_dataset(DatasetConfig(val_size=5), data_dir=tmp_path)


def test_val_size_too_large(digits_root):
    with pytest.raises(DataError) as err:
        load_dataset(DatasetConfig(val_size=600), data_dir=digits_root)
    assert str(err.value) == (  # the file too: dse evaluate takes val_size from a checkpoint
        "dataset.val_size: 600 leaves no training data (600 training samples in "
        f"{digits_root / 'mnist' / 'train-images-idx3-ubyte.gz'})"
    )


@pytest.mark.parametrize(
    "key, config, available, file",
    [
        ("train_subset", DatasetConfig(val_size=100, train_subset=501), 500, "train"),
        ("test_subset", DatasetConfig(val_size=100, test_subset=201), 200, "t10k"),
    ],
)
def test_a_subset_larger_than_its_split_is_refused(digits_root, key, config, available, file):
    """Capped silently, the trial's stored config would claim samples it never trained on."""
    with pytest.raises(DataError) as err:
        load_dataset(config, data_dir=digits_root)
    left = " after dataset.val_size" if key == "train_subset" else ""
    assert str(err.value) == (
        f"dataset.{key}: {available + 1} is more than the {available} samples{left} in "
        f"{digits_root / 'mnist' / f'{file}-images-idx3-ubyte.gz'}"
    )
    exact = config.model_copy(update={key: available})
    assert len(getattr(load_dataset(exact, data_dir=digits_root), key[:-7]).labels) == available


def test_a_subset_check_names_where_the_section_comes_from(digits_root):
    """`dse run` checks each dataset section of a space against the files before it writes:
    the error names the space file and where in it (one line), the key and the files."""
    sizes = check_files("mnist", digits_root)
    config = DatasetConfig(val_size=100, test_subset=201)
    with pytest.raises(DataError) as err:
        sizes.check(config, "s.yaml: axes.dataset.test_subset = 201")
    assert str(err.value) == (
        "s.yaml: axes.dataset.test_subset = 201: dataset.test_subset: 201 is more than the "
        f"200 samples in {digits_root / 'mnist' / 't10k-images-idx3-ubyte.gz'}"
    )
    with pytest.raises(DataError, match="^dataset.val_size: 600 leaves no training data"):
        sizes.check(DatasetConfig(val_size=600))
    sizes.check(DatasetConfig(val_size=100, train_subset=500, test_subset=200), "s.yaml: base")


def test_missing_dataset_offline_names_files_and_places(tmp_path, monkeypatch):
    monkeypatch.setenv("DSE_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as err:
        load_dataset(DatasetConfig(name="fashion_mnist"))
    message = str(err.value)
    assert "fashion_mnist: files not found (train-images-idx3-ubyte.gz" in message
    assert str(tmp_path / "fashion_mnist") in message and "$DSE_DATA_DIR/fashion_mnist/" in message


def test_smallnorb_preprocessing(tmp_path):
    write_norb_dataset(tmp_path / "smallnorb", n_train=40, n_test=20)
    data = load_dataset(DatasetConfig(name="smallnorb", val_size=10), data_dir=tmp_path)
    assert data.train.images.shape == (30, 2, 48, 48)  # stereo pairs resized 96 -> 48
    assert data.input_shape == (2, 32, 32) and data.info.n_classes == 5
    assert int(data.test.labels.max()) < 5


def test_smallnorb_resize_is_a_2x2_mean(tmp_path):
    folder = write_norb_dataset(tmp_path / "smallnorb", n_train=12, n_test=4)
    from dse.data.formats import read_norb

    raw = read_norb(folder / SOURCES["smallnorb"].files["test_images"].name)
    data = load_dataset(DatasetConfig(name="smallnorb", val_size=2), data_dir=tmp_path)
    expected = raw.astype(np.float64).reshape(4, 2, 48, 2, 48, 2).mean(axis=(3, 5))
    assert np.abs(data.test.images.numpy() - np.round(expected)).max() <= 1


def test_labels_that_are_not_integers_are_refused(tmp_path):
    folder = write_idx_dataset(tmp_path / "mnist", n_train=50, n_test=10)
    labels = (np.arange(10) % 10).astype(np.float32) + 0.5
    write_idx(folder / SOURCES["mnist"].files["test_labels"].name, labels)
    with pytest.raises(DataError, match=r"labels must be .* \[0, 10\), found float32 \[10\]"):
        load_dataset(DatasetConfig(val_size=5), data_dir=tmp_path)


def test_a_label_out_of_range_is_named(tmp_path):
    folder = write_idx_dataset(tmp_path / "mnist", n_train=50, n_test=10)
    labels = np.arange(10, dtype=np.uint8)
    labels[[3, 7]] = 12
    write_idx(folder / SOURCES["mnist"].files["test_labels"].name, labels)
    with pytest.raises(DataError, match=r"label 12 of sample 3 is not in \[0, 10\) \(2 labels"):
        load_dataset(DatasetConfig(val_size=5), data_dir=tmp_path)


@pytest.mark.parametrize("shape", [(2, 4, 4), (2, 96, 50)])
def test_smallnorb_images_must_be_96x96_pairs(tmp_path, shape):
    from dse.data.formats import write_norb

    folder = write_norb_dataset(tmp_path / "smallnorb", n_train=12, n_test=4)
    images = np.zeros((4, *shape), dtype=np.uint8)
    write_norb(folder / SOURCES["smallnorb"].files["test_images"].name, images)
    with pytest.raises(DataError, match=rf"pairs \[N, 2, 96, 96\], found uint8 \[4, {shape[0]}"):
        load_dataset(DatasetConfig(name="smallnorb", val_size=2), data_dir=tmp_path)


def test_images_of_another_dtype_name_it_as_numpy_does(tmp_path):
    folder = write_idx_dataset(tmp_path / "mnist", n_train=50, n_test=10)
    write_idx(folder / SOURCES["mnist"].files["test_images"].name, np.zeros((10, 28, 28), ">f4"))
    with pytest.raises(DataError, match=r"\[N, 28, 28\], found float32 \[10, 28, 28\]$"):
        load_dataset(DatasetConfig(val_size=5), data_dir=tmp_path)


def test_a_split_of_no_samples_says_so(tmp_path):
    folder = write_idx_dataset(tmp_path / "mnist", n_train=50, n_test=10)
    files = SOURCES["mnist"].files
    write_idx(folder / files["test_images"].name, np.zeros((0, 28, 28), dtype=np.uint8))
    write_idx(folder / files["test_labels"].name, np.zeros(0, dtype=np.uint8))
    expected = f"{folder / files['test_images'].name}: no images (0 samples)"
    for load in (check_files, lambda n, d: load_dataset(DatasetConfig(val_size=5), data_dir=d)):
        with pytest.raises(DataError) as err:
            load("mnist", tmp_path)
        assert str(err.value) == expected


@pytest.mark.parametrize("labels", [[0, 10], [255, 3]])
def test_labels_past_the_classes_are_refused_before_training(tmp_path, labels):
    """MNIST labels of 10 or 255 would train a 10-class head on a wrong number."""
    folder = write_idx_dataset(tmp_path / "mnist", n_train=50, n_test=10)
    values = np.zeros(50, dtype=np.uint8)
    values[[7, 9]] = labels
    write_idx(folder / SOURCES["mnist"].files["train_labels"].name, values)
    bad = max(labels)
    with pytest.raises(DataError, match=rf"train-labels-idx1-ubyte.gz: label {bad} of sample"):
        check_files("mnist", tmp_path)


def test_the_whole_check_reads_gzipped_images_through(tmp_path):
    """`dse run`'s check (whole) finds a corrupt middle that the header and the gzip trailer
    do not show; without it, every trial failed on the file."""
    folder = write_idx_dataset(tmp_path / "mnist", n_train=50, n_test=10)
    path = folder / SOURCES["mnist"].files["train_images"].name
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert check_files("mnist", tmp_path).train == 50
    with pytest.raises(DataError, match=rf"^{path}: cannot read: "):
        check_files("mnist", tmp_path, whole=True)


def test_smallnorb_files_are_checked_as_mnist_files_are(tmp_path):
    """Labels out of [0, 5), a count that disagrees, a file that is no smallNORB file."""
    from dse.data.formats import write_norb

    folder = write_norb_dataset(tmp_path / "smallnorb", n_train=12, n_test=4)
    files = {role: folder / f.name for role, f in SOURCES["smallnorb"].files.items()}
    write_norb(files["test_labels"], np.array([0, 1, 5, 2], dtype=np.int32))
    with pytest.raises(
        DataError, match=r"testing-cat.mat.gz: label 5 of sample 2 is not in \[0, 5"
    ):
        check_files("smallnorb", tmp_path)
    write_norb(files["test_labels"], np.zeros(3, dtype=np.int32))
    with pytest.raises(DataError, match=r"testing-dat.mat.gz: 4 images but .* has 3 labels"):
        check_files("smallnorb", tmp_path)
    files["train_images"].write_bytes(b"")
    with pytest.raises(DataError, match=r"training-dat.mat.gz: not a smallNORB file: only 0"):
        check_files("smallnorb", tmp_path)
