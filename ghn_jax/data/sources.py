"""Random-access image sources: `source(name, split, data_dir)` -> len + [i] -> {'image', 'label'}.

Every dataset is read through `tfds.data_source` (array_record files, decoded with
PIL/numpy; TensorFlow is never imported). `digits` is a TFDS builder of this package that
prepares itself offline on first use (ghn_jax/data/digits.py); every other dataset must
have been prepared once with `tfds build ... --file_format=array_record` (docs/data.md).

Split names are TFDS's (`train`, `validation`, `test`, slices such as `train[:10%]`), plus
the reference's held-out split (§4.4): `train_minus_val50` (train without the last 50
images of every class) and `val50` (those images); any K works (`val10`, ...). See
ghn_jax/data/holdout.py for the order that defines "last".
"""
import dataclasses
import os
import re
from typing import Any, Dict, Optional

import numpy as np

from ghn_jax.errors import GhnError


@dataclasses.dataclass(frozen=True)
class DatasetDefaults:
    num_classes: int
    image_size: int        # training resolution the reference uses for the dataset
    kind: str              # transform family: 'imagenet' or 'cifar' (ghn_jax/data/transforms.py)
    train_split: str
    eval_split: str


DEFAULTS: Dict[str, DatasetDefaults] = {
    "imagenet2012": DatasetDefaults(1000, 224, "imagenet", "train", "validation"),
    "cifar10": DatasetDefaults(10, 32, "cifar", "train", "test"),
    "cifar100": DatasetDefaults(100, 32, "cifar", "train", "test"),
    "digits": DatasetDefaults(10, 32, "cifar", "train", "test"),
}

_HOLDOUT = re.compile(r"^(?:(?P<base>\w+?)_minus_)?val(?P<k>\d+)$")

_PREPARE_HINTS = {
    "imagenet2012": (
        "download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar into a manual_dir, then, in an "
        "environment with TensorFlow (not this one), run: tfds build imagenet2012 --manual_dir=MANUAL_DIR "
        "--data_dir=DATA_DIR --file_format=array_record"),
}


def defaults(name: str) -> DatasetDefaults:
    """Reference defaults of a known dataset; other TFDS datasets get values read from TFDS."""
    if name in DEFAULTS:
        return DEFAULTS[name]
    return DatasetDefaults(num_classes(name), 224, "imagenet", "train", "validation")


def num_classes(name: str, data_dir: Optional[str] = None) -> int:
    """Number of classes of a dataset (its TFDS 'label' feature for datasets not in DEFAULTS)."""
    if name in DEFAULTS:
        return DEFAULTS[name].num_classes
    import tensorflow_datasets as tfds
    try:
        return int(tfds.builder(name, data_dir=data_dir).info.features["label"].num_classes)
    except Exception as e:
        raise GhnError(f"cannot read the number of classes of dataset {name!r}: {_first_line(e)}") from None


def image_size(name: str) -> int:
    """The training image size the reference uses for a dataset (224 ImageNet, 32 CIFAR/digits)."""
    return defaults(name).image_size


def num_examples(name: str, split: str, data_dir: Optional[str] = None) -> int:
    return len(source(name, split, data_dir))


def source(name: str, split: str, data_dir: Optional[str] = None):
    """A grain random-access source: len(src), src[i] -> {'image': uint8 (H, W, C), 'label': int}.

    Picklable (grain sends it to worker processes). Raises GhnError with one line on how to
    prepare the dataset when it is missing.
    """
    m = _HOLDOUT.match(split)
    if m:
        return _holdout_source(name, m.group("base") or "train", int(m.group("k")),
                               held_out=m.group("base") is None, data_dir=data_dir)
    return ImageLabelSource(_open_tfds(name, split, data_dir))


class ImageLabelSource:
    """Keeps 'image' and 'label' of a TFDS data source (drops file names, ids)."""

    def __init__(self, tfds_source, indices: Optional[np.ndarray] = None):
        self._src = tfds_source
        self._indices = indices   # int64 (n,) view into the TFDS source, or None for all

    def __len__(self) -> int:
        return len(self._src) if self._indices is None else len(self._indices)

    def _key(self, i: int) -> int:
        return int(i) if self._indices is None else int(self._indices[i])

    def __getitem__(self, i: int) -> Dict[str, Any]:
        return _standard(self._src[self._key(i)])

    def __repr__(self):
        n = "all" if self._indices is None else len(self._indices)
        return f"ImageLabelSource({self._src!r}, records={n})"


def _standard(ex) -> Dict[str, Any]:
    return {"image": np.asarray(ex["image"]), "label": int(ex["label"])}


def _open_tfds(name: str, split: str, data_dir: Optional[str], skip_image: bool = False):
    import tensorflow_datasets as tfds
    if name == "digits":
        from ghn_jax.data import digits
        digits.prepare(data_dir)
    kwargs = {"decoders": {"image": tfds.decode.SkipDecoding()}} if skip_image else {}
    try:
        # download=False: TFDS would otherwise try to build the dataset here, which needs
        # TensorFlow and, for ImageNet, the manual download.
        return tfds.data_source(name, split=split, data_dir=data_dir, download=False, **kwargs)
    except Exception as e:   # TFDS raises many types here (NotImplementedError, ValueError, ...)
        raise GhnError(_missing_message(name, split, data_dir, e)) from None


def _missing_message(name: str, split: str, data_dir: Optional[str], error: Exception) -> str:
    import tensorflow_datasets as tfds
    where = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception:
        return f"unknown dataset {name!r} (not a TFDS dataset name); known here: {sorted(DEFAULTS)}"
    try:
        splits = dict(builder.info.splits)
        prepared = builder.is_prepared() and bool(splits)
        fmt = builder.info.file_format
    except Exception:
        prepared, splits, fmt = False, {}, None
    if prepared and split.split("[")[0] not in splits:
        return f"dataset {name!r} has no split {split!r}; available: {sorted(splits)}"
    if prepared and fmt is not None and fmt.value != "array_record":
        return (f"dataset {name!r} at {where} is stored as {fmt.value}, which has no random access; in an "
                f"environment with TensorFlow, convert it (tfds convert_format --dataset_dir={where}/{name} "
                f"--out_file_format=array_record) or rebuild it with --file_format=array_record")
    if prepared:
        return f"cannot open dataset {name!r} split {split!r} at {where}: {_first_line(error)}"
    hint = _PREPARE_HINTS.get(name, f"in an environment with TensorFlow (not this one), run: tfds build {name} "
                                    f"--data_dir=DATA_DIR --file_format=array_record")
    return (f"dataset {name!r} is not prepared in array_record format under {where} (data_dir, default "
            f"$TFDS_DATA_DIR or ~/tensorflow_datasets); {hint}; then pass data_dir=DATA_DIR or set TFDS_DATA_DIR")


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def _holdout_source(name: str, base: str, k: int, held_out: bool, data_dir: Optional[str]):
    from ghn_jax.data import holdout
    full = _open_tfds(name, base, data_dir)
    info = getattr(full, "dataset_info", None)
    version = getattr(info, "version", "?")
    root = data_dir or os.environ.get("TFDS_DATA_DIR", "")
    root = root if "://" in root or not root else os.path.abspath(root)
    key = f"{name}|{version}|{base}|{root}"
    kept, held = holdout.holdout_indices(
        lambda skip_image: _open_tfds(name, base, data_dir, skip_image=skip_image), key, len(full), k)
    return ImageLabelSource(full, held if held_out else kept)
