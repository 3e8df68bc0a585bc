"""A small random GHN-3 written in the official checkpoint format (for I/O tests)."""
import collections

import jax
import jax.numpy as jnp

from ghn_jax.ghn.checkpoint import GHNConfig, flax_to_torch_state_dict, ghn_module
from ghn_jax.ghn.model import GHN3

SMALL = GHNConfig(hid=32, layers=2, heads=8, max_shape=(16, 16, 16, 16), num_classes=1000)


def small_params(seed: int = 0, config: GHNConfig = SMALL):
    m = ghn_module(config)
    b, n = 1, 3
    return m.init(jax.random.PRNGKey(seed), jnp.zeros((b, n), jnp.int32), jnp.zeros((b, n, 4), jnp.int32),
                  jnp.zeros((b, n, n), jnp.int32), jnp.ones((b, n), bool), method=GHN3.init_all)["params"]


def write_official(path, params, layout="released"):
    """joblib.dump of an OrderedDict of torch tensors, as the released files are."""
    import joblib
    import torch
    sd = flax_to_torch_state_dict(params, layout)
    joblib.dump(collections.OrderedDict((k, torch.tensor(v)) for k, v in sd.items()), path)


def write_trainer(path, params, config: GHNConfig = SMALL):
    """torch.save({'state_dict', 'config'}) as the reference trainer writes."""
    import torch
    sd = flax_to_torch_state_dict(params, "trainer")
    cfg = {"max_shape": list(config.max_shape), "num_classes": config.num_classes, "hid": config.hid,
           "layers": config.layers, "heads": config.heads, "layernorm": config.layernorm,
           "weight_norm": True, "ve": True, "is_ghn2": False, "hypernet": "gatedgnn", "decoder": "conv"}
    torch.save({"state_dict": collections.OrderedDict((k, torch.tensor(v)) for k, v in sd.items()),
                "config": cfg, "epoch": 0, "step": 0}, path)
