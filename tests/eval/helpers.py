"""Small random GHNs for the eval/finetune tests (no download, no jit to make them)."""
import dataclasses

import numpy as np

from ghn_jax import tree_paths
from ghn_jax.ghn.checkpoint import GHNConfig, abstract_params
from ghn_jax.ghn.hub import save_safetensors

SMALL = GHNConfig(hid=32, layers=2, heads=8, max_shape=(16, 16, 16, 16), num_classes=1000)


def random_params(config: GHNConfig, seed: int = 0):
    """Random parameters of the right shapes (norm scales 1, the rest N(0, 0.1))."""
    rng = np.random.default_rng(seed)
    flat = {}
    for path, leaf in tree_paths.flatten(abstract_params(config)).items():
        if path.endswith("/scale"):
            flat[path] = np.ones(leaf.shape, np.float32)
        else:
            flat[path] = (0.1 * rng.standard_normal(leaf.shape)).astype(np.float32)
    return tree_paths.unflatten(flat)


def write_small_ghn(path: str, num_classes: int, seed: int = 0) -> str:
    config = dataclasses.replace(SMALL, num_classes=num_classes)
    save_safetensors(str(path), config, random_params(config, seed))
    return str(path)
