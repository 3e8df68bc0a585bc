"""`digits`: scikit-learn's bundled handwritten digits as a real, offline TFDS dataset.

1797 images of 8x8 grey levels 0..16, 10 classes. Each image is scaled to 0..255,
upsampled 4x with PIL bilinear to 32x32 and stored as RGB PNG (the three channels are
equal), so the CIFAR-sized DeepNets-1M networks and transforms apply unchanged.

Splits (stratified, fixed): for every class c, the class's indices in scikit-learn's order
are permuted by np.random.default_rng(SPLIT_SEED + c); the first round(0.2 n_c) go to
`test`, the next round(0.1 n_c) to `validation`, the rest to `train`
(1259 / 179 / 359 images).

The builder prepares into array_record without TensorFlow: images are handed to TFDS as
PIL images, which TFDS encodes with PIL (numpy arrays would need tf.image.encode_png).
"""
import importlib.util
import os
from typing import Dict, Optional

import numpy as np

SPLIT_SEED = 0
IMAGE_SIZE = 32
TEST_FRACTION, VAL_FRACTION = 0.2, 0.1


def split_indices() -> Dict[str, np.ndarray]:
    """{'train', 'validation', 'test'} -> sorted int64 indices into load_digits() order."""
    from sklearn.datasets import load_digits
    labels = load_digits().target
    parts = {"train": [], "validation": [], "test": []}
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        idx = idx[np.random.default_rng(SPLIT_SEED + c).permutation(len(idx))]
        n_test, n_val = int(round(TEST_FRACTION * len(idx))), int(round(VAL_FRACTION * len(idx)))
        parts["test"].append(idx[:n_test])
        parts["validation"].append(idx[n_test:n_test + n_val])
        parts["train"].append(idx[n_test + n_val:])
    return {k: np.sort(np.concatenate(v)).astype(np.int64) for k, v in parts.items()}


def images_uint8() -> np.ndarray:
    """(1797, 32, 32, 3) uint8, the digit images as stored."""
    from PIL import Image
    from sklearn.datasets import load_digits
    small = np.round(load_digits().images * (255.0 / 16.0)).astype(np.uint8)   # (N, 8, 8)
    big = np.stack([np.asarray(Image.fromarray(im).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR))
                    for im in small])
    return np.repeat(big[..., None], 3, axis=-1)


_BUILDER = None


def _builder_class():
    # Defined lazily: importing tensorflow_datasets costs ~0.5 s, and the class registers
    # the name 'digits' in the TFDS registry, which must happen once per process.
    global _BUILDER
    if _BUILDER is not None:
        return _BUILDER
    import tensorflow_datasets as tfds

    class Digits(tfds.core.GeneratorBasedBuilder):
        """scikit-learn digits, 32x32 RGB (see ghn_jax/data/digits.py)."""

        VERSION = tfds.core.Version("1.0.0")
        RELEASE_NOTES = {"1.0.0": "Initial release."}
        # No checksums file (nothing is downloaded). Without this, TFDS looks for one next to
        # the module and, for a module inside a package, needs the optional importlib_resources.
        code_path = None

        def _info(self):
            return self.dataset_info_from_configs(
                features=tfds.features.FeaturesDict({
                    "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 3)),
                    "label": tfds.features.ClassLabel(num_classes=10),
                    "id": np.int64,
                }),
                supervised_keys=("image", "label"),
                description=__doc__,
            )

        def _split_generators(self, dl_manager):
            del dl_manager  # Bundled with scikit-learn: nothing to download.
            return {name: self._generate_examples(idx) for name, idx in split_indices().items()}

        def _generate_examples(self, indices):
            from PIL import Image
            from sklearn.datasets import load_digits
            images, labels = images_uint8(), load_digits().target
            for i in indices:
                yield int(i), {"image": Image.fromarray(images[i]), "label": int(labels[i]),
                               "id": int(i)}

    _BUILDER = Digits
    return Digits



def register() -> None:
    """Makes `tfds.data_source('digits', ...)` resolve to this builder in this process."""
    _builder_class()


def prepare(data_dir: Optional[str] = None) -> str:
    """Builds digits into `data_dir` (TFDS default when None) unless present; returns its path."""
    builder = _builder_class()(data_dir=data_dir, file_format="array_record")
    if builder.is_prepared():
        return os.fspath(builder.data_dir)
    if importlib.util.find_spec("sklearn") is None:
        from ghn_jax.errors import GhnError
        raise GhnError("the 'digits' dataset needs scikit-learn to be built: pip install 'ghn_jax[demo]' "
                       "(or pip install scikit-learn)")
    try:
        builder.download_and_prepare()
    except Exception:
        # Another process may have finished the same build first (TFDS renames a temporary
        # directory into place); anything else is a real failure.
        if not _builder_class()(data_dir=data_dir, file_format="array_record").is_prepared():
            raise
    return os.fspath(builder.data_dir)
