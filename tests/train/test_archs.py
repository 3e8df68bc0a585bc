"""The architecture stream's start-up checks (ghn_jax/train/archs.py)."""
import pytest

from ghn_jax.deepnets import net_plan
from ghn_jax.errors import GhnError
from ghn_jax.train import archs


def _cfg(**kw):
    c = archs.default_config()
    c.imagenet = False
    c.update(kw)
    return c


def test_image_size_attention_networks_cannot_take_fails_at_start():
    with pytest.raises(GhnError, match="data.image_size=16: .*take 32x32 images only"):
        archs.check_image_size(_cfg(), 0, 16)
    archs.check_image_size(_cfg(), 0, 32)
    with pytest.raises(GhnError, match="take 224x224"):
        archs.check_image_size(_cfg(imagenet=True), 0, 32)


def test_bounded_pool_is_checked_network_by_network():
    def has_vit(pool, seed):
        c = _cfg(pool=pool)
        return any(net_plan(archs.spec(c, int(i), 10), False).stem_kind == "vit" for i in archs.pool_indices(c, seed))
    seed_with = next(s for s in range(50) if has_vit(8, s))
    seed_without = next(s for s in range(50) if not has_vit(2, s))
    with pytest.raises(GhnError, match="network [0-9]+ of the pool: .*attention"):
        archs.check_image_size(_cfg(pool=8), seed_with, 16)
    archs.check_image_size(_cfg(pool=2), seed_without, 16)
