"""Sources: digits as a real TFDS dataset, mocked TFDS datasets, the held-out split, error messages."""
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from ghn_jax.data import digits, holdout, sources
from ghn_jax.errors import GhnError


def test_digits_is_a_prepared_tfds_dataset(digits_dir):
    sizes = {s: sources.num_examples("digits", s, digits_dir) for s in ("train", "validation", "test")}
    assert sizes == {"train": 1259, "validation": 179, "test": 359}
    # read through tfds.data_source directly: a real array_record dataset, no TensorFlow
    raw = tfds.data_source("digits", split="test", data_dir=digits_dir)
    ex = raw[0]
    assert ex["image"].shape == (32, 32, 3) and ex["image"].dtype == np.uint8
    assert "tensorflow" not in sys.modules
    src = sources.source("digits", "test", digits_dir)
    ex = src[5]
    assert set(ex) == {"image", "label"} and isinstance(ex["label"], int) and 0 <= ex["label"] < 10
    # stored images are the upscaled scikit-learn digits of the documented split
    imgs, split = digits.images_uint8(), digits.split_indices()
    ids = [raw[i]["id"] for i in range(len(raw))]
    assert sorted(ids) == split["test"].tolist()
    np.testing.assert_array_equal(raw[3]["image"], imgs[raw[3]["id"]])
    labels = np.bincount([src[i]["label"] for i in range(len(src))], minlength=10)
    assert labels.min() >= 34        # stratified: every class ~20% of its ~180 images


def test_digits_split_is_deterministic_and_disjoint():
    a, b = digits.split_indices(), digits.split_indices()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    every = np.concatenate(list(a.values()))
    assert len(every) == 1797 and len(np.unique(every)) == 1797


def test_defaults():
    assert sources.num_classes("imagenet2012") == 1000 and sources.num_classes("digits") == 10
    assert sources.image_size("imagenet2012") == 224 and sources.image_size("cifar10") == 32
    with tfds.testing.mock_data(num_examples=3):
        assert sources.num_classes("mnist") == 10      # not in DEFAULTS: read from TFDS


@pytest.mark.parametrize("name,split", [("imagenet2012", "train"), ("imagenet2012", "validation"),
                                        ("cifar10", "train"), ("cifar100", "test")])
def test_mocked_tfds_datasets_go_through_data_source(name, split):
    with tfds.testing.mock_data(num_examples=12):
        src = sources.source(name, split, data_dir="/nonexistent")
        assert len(src) == 12
        shapes = set()
        for i in range(len(src)):
            ex = src[i]
            assert ex["image"].dtype == np.uint8 and ex["image"].ndim == 3 and ex["image"].shape[-1] == 3
            assert 0 <= ex["label"] < sources.num_classes(name)
            shapes.add(ex["image"].shape)
    if name == "imagenet2012":
        assert len(shapes) > 1      # mock ImageNet images have random sizes


def test_holdout_split_is_last_k_per_class_in_folder_order():
    with tfds.testing.mock_data(num_examples=400):
        raw = tfds.data_source("imagenet2012", split="train")
        labels = np.array([raw[i]["label"] for i in range(len(raw))])
        names = [raw[i]["file_name"] for i in range(len(raw))]
        kept = sources.source("imagenet2012", "train_minus_val1")
        held = sources.source("imagenet2012", "val1")
        assert len(kept) + len(held) == 400
        assert len(held) == len(np.unique(labels))
        # expected: for every class, the file name that sorts last
        expected = {}
        for i, (lab, name) in enumerate(zip(labels, names)):
            if lab not in expected or name > names[expected[lab]]:
                expected[lab] = i
        held_idx = sorted(held._indices.tolist())
        assert held_idx == sorted(expected.values())
        assert set(kept._indices.tolist()).isdisjoint(held_idx)
        np.testing.assert_array_equal(held[0]["image"], raw[int(held._indices[0])]["image"])


def test_holdout_without_file_names_uses_label_then_index_order():
    labels = np.array([2, 0, 1, 0, 2, 0, 1, 2, 2])
    kept, held = holdout.split_last_k(labels, holdout.folder_order(labels, None), 2)
    assert sorted(held.tolist()) == [2, 3, 5, 6, 7, 8]      # class 0: 3, 5; class 1: 2, 6; class 2: 7, 8
    assert sorted(kept.tolist()) == [0, 1, 4]
    # file names reorder within a class (string order, like ImageFolder's sorted listing)
    names = ["c", "b", "x", "a", "a", "z", "y", "b", "c"]
    kept, held = holdout.split_last_k(labels, holdout.folder_order(labels, names), 1)
    assert sorted(held.tolist()) == [5, 6, 8]            # "z", "y", and "c" (ties keep index order)
    with tfds.testing.mock_data(num_examples=60):
        raw = tfds.data_source("cifar10", split="train")
        labels = np.array([raw[i]["label"] for i in range(len(raw))])
        held = sources.source("cifar10", "val3")
        expected = [i for c in range(10) for i in np.flatnonzero(labels == c)[-3:]]
        assert held._indices.tolist() == expected


def test_holdout_split_is_cached(tmp_path, monkeypatch):
    calls = []
    real = holdout._read_labels_and_names

    def counting(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(holdout, "_read_labels_and_names", counting)
    with tfds.testing.mock_data(num_examples=30):
        a = sources.source("cifar10", "val2")
        b = sources.source("cifar10", "train_minus_val2")
    assert len(calls) == 1 and len(a) + len(b) == 30


@pytest.mark.parametrize("name,needle", [
    ("cifar10", "tfds build cifar10"),
    ("imagenet2012", "tfds build imagenet2012 --manual_dir="),
])
def test_missing_dataset_gives_one_clear_line(tmp_path, name, needle):
    with pytest.raises(GhnError) as info:
        sources.source(name, "train", data_dir=str(tmp_path))
    msg = str(info.value)
    assert "\n" not in msg and needle in msg and "--file_format=array_record" in msg and str(tmp_path) in msg
    assert info.value.__cause__ is None and info.value.__suppress_context__   # no chained tfds traceback
    if name == "imagenet2012":
        assert "ILSVRC2012_img_train.tar" in msg


def test_unknown_dataset_and_split(digits_dir):
    with pytest.raises(GhnError, match="unknown dataset 'no_such_dataset'"):
        sources.source("no_such_dataset", "train")
    with pytest.raises(GhnError, match="has no split 'nope'; available: \\['test', 'train', 'validation'\\]"):
        sources.source("digits", "nope", digits_dir)
