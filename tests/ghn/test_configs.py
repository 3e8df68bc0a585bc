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
