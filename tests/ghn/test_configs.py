import importlib.util
import os

import jax
import numpy as np
import pytest

from ghn_jax.ghn.checkpoint import GHNConfig, abstract_params

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")
# Parameter counts of the released checkpoints (design/ghn3-reference.md §3.1).
COUNTS = {"t": 6_906_632, "s": 35_810_368, "l": 214_668_960, "xl": 654_365_184}


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(CONFIGS, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config()


@pytest.mark.parametrize("size", ["t", "s", "l", "xl"])
def test_released_sizes(size):
    cfg = GHNConfig.from_dict(_load(f"ghn3_{size}").model.to_dict())
    n = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(abstract_params(cfg)))
    assert n == COUNTS[size]


@pytest.mark.parametrize("size", ["t", "s", "l", "xl"])
def test_training_configs_train_the_released_sizes(size):
    c = _load(f"ghn3_{size}_imagenet")
    cfg = GHNConfig(hid=c.ghn.hid, layers=c.ghn.layers, heads=c.ghn.heads, max_shape=tuple(c.ghn.max_shape),
                    num_classes=c.ghn.num_classes, layernorm=c.ghn.layernorm)
    n = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(abstract_params(cfg)))
    assert n == COUNTS[size]
    assert c.deepnets.meta_batch == (16 if size == "xl" else 8)
    assert c.sharding_rules[0][1].startswith("fsdp" if size in ("l", "xl") else "replicate")


def test_every_config_starts_with_its_command():
    for name in sorted(os.listdir(CONFIGS)):
        if name.endswith(".py"):
            with open(os.path.join(CONFIGS, name)) as f:
                assert f.readline().startswith("# python -m ghn_jax."), name
