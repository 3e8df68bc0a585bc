"""numpy/PIL transforms against torchvision: deterministic ops numerically, random ones by distribution."""
import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tv = pytest.importorskip("torchvision.transforms")
F = pytest.importorskip("torchvision.transforms.functional")
from PIL import Image  # noqa: E402

from ghn_jax.data import transforms as T  # noqa: E402


def _image(h, w, seed=0):
    """uint8 (h, w, 3) with gradients, colour and noise (flat images hide hue/contrast bugs)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 3 + yy) % 256, (yy * 4) % 256, (xx * yy) % 256], -1)
    return np.clip(img + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)


def _hwc(t):
    return t.permute(1, 2, 0).numpy()


def _tensor(img):
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255


IMG = _image(61, 83)


@pytest.mark.parametrize("op,tv_op,factor", [
    (T.adjust_brightness, F.adjust_brightness, 1.3), (T.adjust_brightness, F.adjust_brightness, 0.6),
    (T.adjust_contrast, F.adjust_contrast, 0.7), (T.adjust_contrast, F.adjust_contrast, 1.4),
    (T.adjust_saturation, F.adjust_saturation, 0.6), (T.adjust_saturation, F.adjust_saturation, 1.4),
    (T.adjust_hue, F.adjust_hue, 0.17), (T.adjust_hue, F.adjust_hue, -0.2), (T.adjust_hue, F.adjust_hue, 0.5),
])
def test_colour_ops_match_torchvision(op, tv_op, factor):
    ours = op(T.to_float(IMG), factor)
    # torchvision's tensor ops (same float formulas): equal to float rounding.
    np.testing.assert_allclose(ours, _hwc(tv_op(_tensor(IMG), factor)), atol=1e-5)
    # torchvision's PIL ops (what the reference ran) re-quantise to uint8 with truncation
    # (and saturation blends with PIL's uint8 grey): under 2 grey levels apart. Hue goes through PIL's 8-bit HSV (1/256-turn hue steps, the
    # shift truncated to 1/255 turn): ~1.5 levels on average, up to ~15 on saturated pixels.
    pil = np.asarray(tv_op(Image.fromarray(IMG), factor)).astype(np.float32) / 255
    err = np.abs(ours - pil) * 255
    if op is T.adjust_hue:
        assert err.mean() < 2 and np.percentile(err, 99) < 12 and err.max() < 20
    else:
        assert err.mean() < 1 and err.max() < 2


def test_colour_jitter_applies_sampled_factors_in_sampled_order():
    ops = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue]
    for seed in range(6):
        order, *factors = T.color_jitter_params(np.random.default_rng(seed))
        ref = _tensor(IMG)
        for i in order:
            ref = ops[i](ref, factors[i])
        ours = T.color_jitter(IMG, np.random.default_rng(seed))
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, _hwc(ref), atol=1e-5)


def test_colour_jitter_parameter_distribution():
    n = 2400
    rng = np.random.default_rng(1)
    samples = [T.color_jitter_params(rng) for _ in range(n)]
    perms = np.array([tuple(s[0]) for s in samples])
    counts = {p: 0 for p in itertools.permutations(range(4))}
    for p in map(tuple, perms):
        counts[p] += 1
    assert len(counts) == 24 and min(counts.values()) > 0.5 * n / 24    # uniform random order
    b, c, s, h = (np.array([x[i] for x in samples]) for i in range(1, 5))
    for arr, lo, hi in [(b, 0.6, 1.4), (c, 0.6, 1.4), (s, 0.6, 1.4), (h, -0.2, 0.2)]:
        assert lo <= arr.min() and arr.max() <= hi
        np.testing.assert_allclose(np.quantile(arr, [0.25, 0.5, 0.75]),
                                   lo + (hi - lo) * np.array([0.25, 0.5, 0.75]), atol=0.04 * (hi - lo))
    # torchvision's ranges for the same arguments
    cj = tv.ColorJitter(0.4, 0.4, 0.4, 0.2)
    assert (cj.brightness, cj.contrast, cj.saturation, cj.hue) == ((0.6, 1.4), (0.6, 1.4), (0.6, 1.4), (-0.2, 0.2))
    assert T.color_jitter_params(rng, brightness=0, contrast=0, saturation=0, hue=0)[1:] == (None,) * 4


def test_geometric_ops_match_torchvision_pil():
    pil = Image.fromarray(IMG)
    for size in (40, 61, 100, 256):
        ours = T.resize_shorter(IMG, size)
        np.testing.assert_array_equal(ours, np.asarray(F.resize(pil, size)))
    tall = _image(90, 40)
    np.testing.assert_array_equal(T.resize_shorter(tall, 32), np.asarray(F.resize(Image.fromarray(tall), 32)))
    for size in (50, 61, 70, 90):   # 70, 90: larger than the image -> zero padding
        np.testing.assert_array_equal(T.center_crop(IMG, size), np.asarray(F.center_crop(pil, size)))
    for box in [(5, 7, 30, 41), (0, 0, 61, 83), (10, 2, 8, 8)]:
        ours = T.resize(T.crop(IMG, *box), 24, 24)
        np.testing.assert_array_equal(ours, np.asarray(F.resized_crop(pil, *box, [24, 24])))
    np.testing.assert_array_equal(T.pad(IMG, 4), np.asarray(F.pad(pil, 4)))
    np.testing.assert_array_equal(IMG[:, ::-1], np.asarray(F.hflip(pil)))


def test_normalize_matches_torchvision():
    ref = tv.Compose([tv.ToTensor(), tv.Normalize(T.IMAGENET_MEAN, T.IMAGENET_STD)])(Image.fromarray(IMG))
    np.testing.assert_allclose(T.normalize(IMG), _hwc(ref), atol=1e-6)
    ref = tv.Compose([tv.ToTensor(), tv.Normalize(T.CIFAR_MEAN, T.CIFAR_STD)])(Image.fromarray(IMG))
    np.testing.assert_allclose(T.normalize(IMG, T.CIFAR_MEAN, T.CIFAR_STD), _hwc(ref), atol=1e-6)


@pytest.mark.parametrize("hw", [(300, 457), (256, 256), (199, 150), (500, 224)])
def test_eval_transform_matches_torchvision(hw):
    img = _image(*hw, seed=2)
    ref = tv.Compose([tv.Resize(256), tv.CenterCrop(224), tv.ToTensor(),
                      tv.Normalize(T.IMAGENET_MEAN, T.IMAGENET_STD)])(Image.fromarray(img))
    out = T.eval_transform("imagenet", 224)(img)
    assert out.shape == (224, 224, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, _hwc(ref), atol=1e-6)
    # reference sizes for other resolutions: Resize(max(s, 256)), CenterCrop(max(s, 224))
    assert T.eval_transform("imagenet", 299)(img).shape == (299, 299, 3)
    assert T.eval_transform("imagenet", 160)(img).shape == (224, 224, 3)


def test_cifar_transforms():
    img = _image(32, 32, seed=3)
    ref = tv.Compose([tv.ToTensor(), tv.Normalize(T.CIFAR_MEAN, T.CIFAR_STD)])(Image.fromarray(img))
    np.testing.assert_allclose(T.eval_transform("cifar", 32)(img), _hwc(ref), atol=1e-6)
    # RandomCrop(32, padding=4): offsets uniform on 0..8 like torchvision, content = crop of the padded image
    offsets = []
    for seed in range(900):
        out = T.random_crop(img, 32, np.random.default_rng(seed), padding=4)
        padded = T.pad(img, 4)
        hits = [(i, j) for i in range(9) for j in range(9) if np.array_equal(padded[i:i + 32, j:j + 32], out)]
        assert hits
        offsets.append(hits[0])
    tops = np.bincount([o[0] for o in offsets], minlength=9) / len(offsets)
    torch.manual_seed(0)
    tv_tops = np.bincount([tv.RandomCrop.get_params(torch.empty(3, 40, 40), (32, 32))[0] for _ in range(900)],
                          minlength=9) / 900
    assert np.abs(tops - 1 / 9).max() < 0.05 and np.abs(tv_tops - 1 / 9).max() < 0.05
    out = T.train_transform("cifar", 32)(img, np.random.default_rng(0))
    assert out.shape == (32, 32, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(T.train_transform("cifar10", 32)(img, np.random.default_rng(0)), out)
    assert T.kind_of("imagenet2012") == "imagenet" and T.kind_of("digits") == "cifar"


def _rrc_stats(params, h, w):
    p = np.array(params, np.float64)   # (n, 4): top, left, ch, cw
    area = p[:, 2] * p[:, 3] / (h * w)
    log_ratio = np.log(p[:, 3] / p[:, 2])
    top = p[:, 0] / np.maximum(h - p[:, 2], 1)
    full = np.mean((p[:, 2] == h) & (p[:, 3] == w))
    return np.quantile(area, [0.1, 0.5, 0.9]), np.quantile(log_ratio, [0.1, 0.5, 0.9]), top.mean(), full


@pytest.mark.parametrize("hw", [(300, 200), (40, 400)])   # (40, 400): mostly the centre fallback
def test_random_resized_crop_distribution_matches_torchvision(hw):
    h, w = hw
    n = 3000
    rng = np.random.default_rng(0)
    ours = [T.random_resized_crop_params(h, w, rng) for _ in range(n)]
    torch.manual_seed(0)
    img = torch.empty(3, h, w)
    ref = [tv.RandomResizedCrop.get_params(img, [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(n)]
    for a, b in zip(_rrc_stats(ours, h, w), _rrc_stats(ref, h, w)):
        np.testing.assert_allclose(a, b, atol=0.05)
    for top, left, ch, cw in ours:
        assert 0 <= top and top + ch <= h and 0 <= left and left + cw <= w and ch > 0 and cw > 0
    out = T.random_resized_crop(_image(h, w), 64, np.random.default_rng(1))
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8


def test_hflip_probability_and_channels():
    rng = np.random.default_rng(0)
    flips = np.mean([T.hflip(IMG, rng)[0, 0, 0] != IMG[0, 0, 0] for _ in range(2000)])
    assert abs(flips - 0.5) < 0.04
    grey = IMG[..., :1]
    assert T.to_rgb(grey).shape == (61, 83, 3) and np.array_equal(T.to_rgb(grey)[..., 2], grey[..., 0])
    assert T.to_rgb(IMG[..., 0]).shape == (61, 83, 3)
    assert T.to_rgb(np.concatenate([IMG, IMG[..., :1]], -1)).shape == (61, 83, 3)
    out = T.train_transform("imagenet", 48, colour_jitter=True)(grey, np.random.default_rng(0))
    assert out.shape == (48, 48, 3) and out.dtype == np.float32 and np.isfinite(out).all()
