"""Official GHN checkpoints: Hugging Face hub download, pickle import, safetensors cache.

The released files (`SamsungSAILMontreal/ghn3` on the Hugging Face hub) are joblib
pickles of torch tensors. They are unpickled only with trust_pickle=True, converted once
to Flax params, and cached as safetensors (config in the metadata): later loads need
neither torch nor a pickle.
"""
import json
import os
from typing import Any, Optional, Tuple

import numpy as np

from ghn_jax import tree_paths
from ghn_jax.ghn.checkpoint import CheckpointError, GHNConfig, abstract_params, load_torch_checkpoint

HF_REPO = "SamsungSAILMontreal/ghn3"
RELEASED = {
    "ghn3tm8": "GHN-3-T/m8: hid 64, 3 layers (6.9M params, 27 MB) - good for small machines",
    "ghn3sm8": "GHN-3-S/m8: hid 128, 5 layers (36M params)",
    "ghn3lm8": "GHN-3-L/m8: hid 256, 12 layers (215M params)",
    "ghn3xlm16": "GHN-3-XL/m16: hid 384, 24 layers (654M params, 2.5 GB) - the reference default",
    "ghn2": "GHN-2 baseline (GatedGNN, hid 32)",
}


def cache_dir() -> str:
    return os.environ.get("GHN_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "ghn_jax"))


def save_safetensors(path: str, config: GHNConfig, params: Any) -> None:
    from safetensors.numpy import save_file
    from ghn_jax.cli import atomic_write
    flat = {k: np.ascontiguousarray(np.asarray(v, np.float32)) for k, v in tree_paths.flatten(params).items()}
    with atomic_write(path) as tmp:
        save_file(flat, tmp, metadata={"format": "ghn_jax", "config": json.dumps(config.to_dict())})


def load_safetensors(path: str) -> Tuple[GHNConfig, Any]:
    from safetensors import safe_open
    try:
        with safe_open(path, framework="numpy") as f:
            meta = f.metadata() or {}
            if meta.get("format") != "ghn_jax" or "config" not in meta:
                raise CheckpointError(f"'{path}' is a safetensors file but not a ghn_jax GHN checkpoint")
            config = GHNConfig.from_dict(json.loads(meta["config"]))
            flat = {k: f.get_tensor(k) for k in f.keys()}
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"'{path}' is not a readable safetensors file (truncated or corrupt?): {e}") from None
    params = tree_paths.unflatten(flat)
    expected = tree_paths.flatten(abstract_params(config))
    for k, v in expected.items():
        if k not in flat or tuple(flat[k].shape) != tuple(v.shape):
            raise CheckpointError(f"'{path}': tensor '{k}' is missing or has the wrong shape for {config}")
    return config, params


def load_ghn(name_or_path: str, trust_pickle: bool = False, cache: Optional[str] = None,
             endpoint: Optional[str] = None) -> Tuple[GHNConfig, Any]:
    """(config, Flax params) of a released GHN name or a local checkpoint path."""
    if os.path.exists(name_or_path):
        if name_or_path.endswith(".safetensors"):
            return load_safetensors(name_or_path)
        return load_torch_checkpoint(name_or_path, trust_pickle=trust_pickle)
    name = os.path.splitext(os.path.basename(name_or_path))[0]
    if name not in RELEASED:
        if os.sep in name_or_path or name_or_path.endswith((".pt", ".pth", ".joblib", ".safetensors")):
            raise CheckpointError(f"checkpoint file '{name_or_path}' does not exist")
        raise CheckpointError(f"unknown GHN checkpoint '{name_or_path}': use one of {', '.join(RELEASED)} "
                              f"or a path to a checkpoint file")
    cache = cache or cache_dir()
    converted = os.path.join(cache, f"{name}.safetensors")
    if os.path.exists(converted):
        return load_safetensors(converted)
    pickle_path = _download(f"{name}.pt", cache, endpoint)
    config, params = load_torch_checkpoint(pickle_path, trust_pickle=trust_pickle)
    os.makedirs(cache, exist_ok=True)
    save_safetensors(converted, config, params)
    return config, params


def _download(filename: str, cache: str, endpoint: Optional[str]) -> str:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as e:  # pragma: no cover
        raise CheckpointError(f"downloading checkpoints needs huggingface_hub ({e})")
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    try:
        return hf_hub_download(HF_REPO, filename, cache_dir=os.path.join(cache, "hub"), endpoint=endpoint)
    except Exception as e:  # network, 404, offline mode: all end the same way for the user
        raise CheckpointError(
            f"could not download '{filename}' from the Hugging Face hub ({HF_REPO}): "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. If this machine is offline, "
            f"download the file elsewhere and pass its path with --ckpt PATH.") from None
