"""Per-image transforms in numpy + PIL, with torchvision's semantics (no torch, no TF).

Images enter as uint8 (H, W, C), C in {1, 3, 4} (or (H, W)); they leave the factories as
float32 (size, size, 3), normalised. Geometric ops stay in uint8 and resize with PIL,
exactly as torchvision does on the PIL images that ImageFolder yields. Colour ops work on
float32 in [0, 1] with torchvision's tensor formulas: the reference applied them to PIL
images, which re-quantise to uint8 after each of the four ops (and truncate instead of
rounding); the difference is below one grey level per op for brightness, contrast and
saturation, and a few levels for hue (docs/data.md has the measured numbers).

Random ops take an `np.random.Generator` and draw the same quantities, from the same
distributions, in the same order as torchvision's `get_params` (torch's RNG stream itself
cannot be reproduced without torch).
"""
import math
import numbers
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# ppuda's transforms_cifar (used by the reference for 32x32 inputs).
CIFAR_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR_STD = (0.24703233, 0.24348505, 0.26158768)

KINDS = ("imagenet", "cifar")

Range = Union[float, Tuple[float, float], None]


# ---------------------------------------------------------------------------- geometry (uint8)

def to_rgb(img: np.ndarray) -> np.ndarray:
    """uint8 (H, W) / (H, W, 1|3|4) -> uint8 (H, W, 3). Grey is repeated, alpha dropped."""
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise TypeError(f"images must be uint8, got {img.dtype}")
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an (H, W, C) image with C in 1, 3, 4; got shape {img.shape}")
    if img.shape[-1] == 1:
        return np.repeat(img, 3, axis=-1)
    return img[..., :3]


def resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (height, width, 3); PIL bilinear (antialiased when shrinking).

    torchvision's PIL path is `img.resize((w, h), BILINEAR)` and skips equal sizes; so do we.
    """
    if img.shape[:2] == (height, width):
        return img
    return np.asarray(Image.fromarray(img).resize((width, height), Image.BILINEAR))


def crop(img: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """uint8 (H, W, C) -> (height, width, C). The box must lie inside the image."""
    return img[top:top + height, left:left + width]


def pad(img: np.ndarray, padding: int, fill: int = 0) -> np.ndarray:
    """Constant padding on all four sides: (H, W, C) -> (H + 2p, W + 2p, C)."""
    return np.pad(img, ((padding, padding), (padding, padding), (0, 0)), constant_values=fill)


def resize_shorter(img: np.ndarray, size: int) -> np.ndarray:
    """torchvision Resize(size) with an int: shorter side -> size, longer side -> int(size * long / short)."""
    h, w = img.shape[:2]
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_h, new_w = size, int(size * w / h)
    return resize(img, new_h, new_w)


def center_crop(img: np.ndarray, size: int) -> np.ndarray:
    """torchvision CenterCrop(size): zero-pads first when the image is smaller (as torchvision)."""
    h, w = img.shape[:2]
    if size > w or size > h:
        pad_l = (size - w) // 2 if size > w else 0
        pad_t = (size - h) // 2 if size > h else 0
        pad_r = (size - w + 1) // 2 if size > w else 0
        pad_b = (size - h + 1) // 2 if size > h else 0
        img = np.pad(img, ((pad_t, pad_b), (pad_l, pad_r), (0, 0)))
        h, w = img.shape[:2]
        if (h, w) == (size, size):
            return img
    # Python's round (half to even), as torchvision.
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return crop(img, top, left, size, size)


def random_resized_crop_params(height: int, width: int, rng: np.random.Generator,
                               scale: Tuple[float, float] = (0.08, 1.0),
                               ratio: Tuple[float, float] = (3 / 4, 4 / 3)) -> Tuple[int, int, int, int]:
    """torchvision RandomResizedCrop.get_params -> (top, left, h, w).

    Up to 10 draws of (area fraction ~ U(scale), log aspect ~ U(log ratio)); the first box
    that fits is placed uniformly. Otherwise the centred box of the whole image clamped to
    the ratio range.
    """
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = float(width) / float(height)
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def random_resized_crop(img: np.ndarray, size: int, rng: np.random.Generator,
                        scale: Tuple[float, float] = (0.08, 1.0),
                        ratio: Tuple[float, float] = (3 / 4, 4 / 3)) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (size, size, 3): random box, then PIL bilinear resize."""
    top, left, h, w = random_resized_crop_params(img.shape[0], img.shape[1], rng, scale, ratio)
    return resize(crop(img, top, left, h, w), size, size)


def random_crop(img: np.ndarray, size: int, rng: np.random.Generator, padding: int = 4) -> np.ndarray:
    """torchvision RandomCrop(size, padding): zero-pad, then a uniformly placed size x size box."""
    if padding:
        img = pad(img, padding)
    h, w = img.shape[:2]
    if h < size or w < size:
        raise ValueError(f"crop size {size} is larger than the padded image {(h, w)}")
    if (h, w) == (size, size):
        return img
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    return crop(img, top, left, size, size)


def hflip(img: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Mirror left-right with probability p (torchvision draws rand() < p)."""
    return img[:, ::-1] if rng.random() < p else img


# ---------------------------------------------------------------------------- colour (float32 in [0, 1])

def to_float(img: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1] (ToTensor without the transpose); float input passes through."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / np.float32(255.0)
    return img.astype(np.float32, copy=False)


def _blend(a: np.ndarray, b, ratio: float) -> np.ndarray:
    ratio = np.float32(ratio)
    return np.clip(ratio * a + (np.float32(1.0) - ratio) * b, 0.0, 1.0)


def grayscale(x: np.ndarray) -> np.ndarray:
    """float32 (H, W, 3) -> (H, W, 1), torchvision's luma weights."""
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    return (np.float32(0.2989) * r + np.float32(0.587) * g + np.float32(0.114) * b)[..., None]


def adjust_brightness(x: np.ndarray, factor: float) -> np.ndarray:
    return _blend(x, np.float32(0.0), factor)


def adjust_contrast(x: np.ndarray, factor: float) -> np.ndarray:
    return _blend(x, np.mean(grayscale(x), dtype=np.float32), factor)


def adjust_saturation(x: np.ndarray, factor: float) -> np.ndarray:
    return _blend(x, grayscale(x), factor)


def _planes(x: np.ndarray):
    # Contiguous (H, W) planes: ops on strided x[..., c] views are several times slower.
    return np.ascontiguousarray(np.moveaxis(x, -1, 0))


def _rgb_to_hsv_planes(r, g, b):
    maxc = np.maximum(np.maximum(r, g), b)
    minc = np.minimum(np.minimum(r, g), b)
    eqc = maxc == minc
    cr = maxc - minc
    one = np.float32(1.0)
    # Grey pixels would divide by zero; their S and H are 0 whatever the divisor.
    s = cr / np.where(eqc, one, maxc)
    cr_div = np.where(eqc, one, cr)
    rc, gc, bc = (maxc - r) / cr_div, (maxc - g) / cr_div, (maxc - b) / cr_div
    is_r = maxc == r
    is_g = (maxc == g) & ~is_r
    is_b = ~is_g & ~is_r
    h = is_r * (bc - gc) + is_g * (np.float32(2.0) + rc - bc) + is_b * (np.float32(4.0) + gc - rc)
    h = np.fmod(h / np.float32(6.0) + one, one)
    return h, s, maxc


def _hsv_to_rgb_planes(h, s, v):
    i = np.floor(h * np.float32(6.0))
    f = h * np.float32(6.0) - i
    i = i.astype(np.int32) % 6
    one = np.float32(1.0)
    p = np.clip(v * (one - s), 0.0, 1.0)
    q = np.clip(v * (one - s * f), 0.0, 1.0)
    t = np.clip(v * (one - s * (one - f)), 0.0, 1.0)
    return (np.choose(i, [v, q, p, p, t, v]), np.choose(i, [t, v, v, q, p, p]),
            np.choose(i, [p, p, t, v, v, q]))


def rgb_to_hsv(x: np.ndarray) -> np.ndarray:
    """float32 (H, W, 3) in [0, 1] -> HSV, all in [0, 1] (torchvision's _rgb2hsv)."""
    return np.stack(_rgb_to_hsv_planes(*_planes(x)), -1)


def hsv_to_rgb(x: np.ndarray) -> np.ndarray:
    """Inverse of rgb_to_hsv (torchvision's _hsv2rgb)."""
    return np.stack(_hsv_to_rgb_planes(*_planes(x)), -1)


def adjust_hue(x: np.ndarray, factor: float) -> np.ndarray:
    """Rotate hue by `factor` turns, factor in [-0.5, 0.5]."""
    if not -0.5 <= factor <= 0.5:
        raise ValueError(f"hue factor {factor} is not in [-0.5, 0.5]")
    h, s, v = _rgb_to_hsv_planes(*_planes(x))
    h = np.mod(h + np.float32(factor), np.float32(1.0))
    return np.stack(_hsv_to_rgb_planes(h, s, v), -1)


def _jitter_range(value: Range, name: str, center: float, bound: Tuple[float, float],
                  clip_first_on_zero: bool = True) -> Optional[Tuple[float, float]]:
    """torchvision ColorJitter._check_input: a number v means [center - v, center + v]."""
    if value is None:
        return None
    if isinstance(value, numbers.Number):
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {value}")
        lo, hi = center - float(value), center + float(value)
        if clip_first_on_zero:
            lo = max(lo, 0.0)
    else:
        lo, hi = (float(v) for v in value)
    if not bound[0] <= lo <= hi <= bound[1]:
        raise ValueError(f"{name} range ({lo}, {hi}) is outside {bound}")
    return None if lo == hi == center else (lo, hi)


def color_jitter_params(rng: np.random.Generator, brightness: Range = 0.4, contrast: Range = 0.4,
                        saturation: Range = 0.4, hue: Range = 0.2):
    """torchvision ColorJitter.get_params: (order of the 4 ops, b, c, s, h); None = op off."""
    ranges = (_jitter_range(brightness, "brightness", 1.0, (0.0, math.inf)),
              _jitter_range(contrast, "contrast", 1.0, (0.0, math.inf)),
              _jitter_range(saturation, "saturation", 1.0, (0.0, math.inf)),
              _jitter_range(hue, "hue", 0.0, (-0.5, 0.5), clip_first_on_zero=False))
    order = rng.permutation(4)
    factors = tuple(None if r is None else float(rng.uniform(r[0], r[1])) for r in ranges)
    return (order,) + factors


_JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def color_jitter(img: np.ndarray, rng: np.random.Generator, brightness: Range = 0.4,
                 contrast: Range = 0.4, saturation: Range = 0.4, hue: Range = 0.2) -> np.ndarray:
    """uint8 or float (H, W, 3) -> float32 (H, W, 3) in [0, 1]; the 4 ops in random order."""
    order, *factors = color_jitter_params(rng, brightness, contrast, saturation, hue)
    x = to_float(img)
    for op_id in order:
        if factors[op_id] is not None:
            x = _JITTER_OPS[op_id](x, factors[op_id])
    return x


def normalize(x: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """uint8 or float in [0, 1] (H, W, 3) -> float32 (x - mean) / std per channel."""
    x = to_float(x)
    return (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


# ---------------------------------------------------------------------------- factories

def default_stats(kind: str) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """(mean, std) the reference normalises with for a transform kind."""
    _check_kind(kind)
    return (IMAGENET_MEAN, IMAGENET_STD) if kind == "imagenet" else (CIFAR_MEAN, CIFAR_STD)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown transform kind {kind!r}; expected one of {KINDS}")


def _to_size(img: np.ndarray, size: int) -> np.ndarray:
    # Small-image datasets are already size x size; anything else (mock data, other datasets)
    # is resized first so that batches have one shape. The reference never hits this path.
    return resize(img, size, size) if img.shape[:2] != (size, size) else img


class TrainTransform:
    """Callable (uint8 image, rng) -> float32 (image_size, image_size, 3). Picklable.

    kind 'imagenet' (ppuda transforms_imagenet): RandomResizedCrop(image_size) + hflip
      [+ ColorJitter(0.4, 0.4, 0.4, 0.2)] + Normalize.
    kind 'cifar' (ppuda transforms_cifar): RandomCrop(image_size, padding=4) + hflip
      [+ ColorJitter] + Normalize.
    """

    def __init__(self, kind: str, image_size: int, colour_jitter: bool = False,
                 mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None):
        _check_kind(kind)
        d_mean, d_std = default_stats(kind)
        self.kind, self.image_size, self.colour_jitter = kind, int(image_size), bool(colour_jitter)
        self.mean, self.std = tuple(mean or d_mean), tuple(std or d_std)

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        img = to_rgb(img)
        if self.kind == "imagenet":
            img = random_resized_crop(img, self.image_size, rng)
        else:
            img = random_crop(_to_size(img, self.image_size), self.image_size, rng, padding=4)
        img = hflip(img, rng)
        x = color_jitter(img, rng) if self.colour_jitter else img
        return normalize(x, self.mean, self.std)

    def __repr__(self):
        return (f"TrainTransform(kind={self.kind!r}, image_size={self.image_size}, "
                f"colour_jitter={self.colour_jitter})")


class EvalTransform:
    """Callable uint8 image -> float32 (crop, crop, 3). Picklable.

    kind 'imagenet': Resize(resize_size) (shorter side) + CenterCrop(crop_size) + Normalize,
      with the reference's defaults resize = max(image_size, 256), crop = max(image_size, 224).
    kind 'cifar': identity + Normalize (images not image_size x image_size are resized).
    """

    def __init__(self, kind: str, image_size: int, resize_size: Optional[int] = None,
                 crop_size: Optional[int] = None, mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None):
        _check_kind(kind)
        d_mean, d_std = default_stats(kind)
        self.kind, self.image_size = kind, int(image_size)
        self.resize_size = int(resize_size or max(image_size, 256))
        self.crop_size = int(crop_size or (max(image_size, 224) if kind == "imagenet" else image_size))
        self.mean, self.std = tuple(mean or d_mean), tuple(std or d_std)

    @property
    def output_size(self) -> int:
        return self.crop_size

    def __call__(self, img: np.ndarray) -> np.ndarray:
        img = to_rgb(img)
        if self.kind == "imagenet":
            img = center_crop(resize_shorter(img, self.resize_size), self.crop_size)
        else:
            img = _to_size(img, self.crop_size)
        return normalize(img, self.mean, self.std)

    def __repr__(self):
        return (f"EvalTransform(kind={self.kind!r}, resize={self.resize_size}, "
                f"crop={self.crop_size})")


def kind_of(kind_or_dataset: str) -> str:
    """'imagenet' / 'cifar', or the kind of a dataset name ('cifar10' -> 'cifar')."""
    if kind_or_dataset in KINDS:
        return kind_or_dataset
    from ghn_jax.data.sources import DEFAULTS   # lazy: sources imports nothing from here
    if kind_or_dataset in DEFAULTS:
        return DEFAULTS[kind_or_dataset].kind
    raise ValueError(f"unknown transform kind or dataset {kind_or_dataset!r}; kinds: {KINDS}, "
                     f"datasets: {sorted(DEFAULTS)}")


def train_transform(kind: str, image_size: int, colour_jitter: bool = False,
                    **stats) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """The training transform of a kind ('imagenet', 'cifar') or dataset name; see TrainTransform."""
    return TrainTransform(kind_of(kind), image_size, colour_jitter, **stats)


def eval_transform(kind: str, image_size: int, resize_size: Optional[int] = None,
                   crop_size: Optional[int] = None, **stats) -> Callable[[np.ndarray], np.ndarray]:
    """The evaluation transform of a kind or dataset name; see EvalTransform."""
    return EvalTransform(kind_of(kind), image_size, resize_size, crop_size, **stats)
