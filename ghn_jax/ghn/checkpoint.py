"""GHN checkpoints: the reference's torch state dicts <-> our Flax params.

Two torch layouts exist (design/ghn3-reference.md §3.3): the released joblib files (a
plain state dict whose structural tables `centrality_embed_in/out`, `input_dist_embed`
are top-level) and the trainer's `torch.save({'state_dict', 'config'})` (tables under
`gnn.0.`). Both map onto the same Flax tree; the config is inferred from the keys (§3.2).
"""
import dataclasses
import math
import re
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from ghn_jax import tree_paths
from ghn_jax.errors import GhnError


class CheckpointError(GhnError):
    """A GHN checkpoint that is corrupt, truncated or of an unknown layout."""


@dataclasses.dataclass(frozen=True)
class GHNConfig:
    hid: int = 64
    layers: int = 3
    heads: int = 8
    max_shape: Tuple[int, int, int, int] = (64, 64, 16, 16)
    num_classes: int = 1000
    layernorm: bool = True
    is_ghn2: bool = False

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["max_shape"] = list(self.max_shape)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GHNConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in fields}
        if "max_shape" in kw:
            kw["max_shape"] = tuple(int(x) for x in kw["max_shape"])
        return cls(**kw)


# torch key pattern -> Flax path template. Order matters (first match wins).
_RULES = [
    (r"^ln\.weight$", "ln/scale"), (r"^ln\.bias$", "ln/bias"),
    (r"^embed\.weight$", "embed/embedding"),
    (r"^shape_enc\.embed_(channel|spatial)\.weight$", r"embed_\1/embedding"),
    (r"^(?:gnn\.0\.)?(centrality_embed_in|centrality_embed_out|input_dist_embed)\.weight$",
     r"gnn_0/\1/embedding"),
    (r"^gnn\.(\d+)\.ln([12])\.weight$", r"gnn_\1/ln\2/scale"),
    (r"^gnn\.(\d+)\.ln([12])\.bias$", r"gnn_\1/ln\2/bias"),
    (r"^gnn\.(\d+)\.attn\.to_qkv\.weight$", r"gnn_\1/to_qkv/kernel"),
    (r"^gnn\.(\d+)\.attn\.to_out\.0\.(weight|bias)$", r"gnn_\1/to_out/\2"),
    (r"^gnn\.0\.attn\.edge_embed\.embed\.weight$", "gnn_0/edge_embed/embedding"),
    (r"^gnn\.0\.attn\.proj_e\.([02])\.(weight|bias)$", r"gnn_0/proj_e_\1/\2"),
    (r"^gnn\.(\d+)\.ff\.net\.([03])\.(weight|bias)$", r"gnn_\1/ff_\2/\3"),
    (r"^decoder\.fc\.0\.(weight|bias)$", r"decoder/fc_0/\1"),
    (r"^decoder\.conv\.([02])\.(weight|bias)$", r"decoder/conv_\1/\2"),
    (r"^decoder\.class_layer_predictor\.1\.(weight|bias)$", r"decoder/class_layer_predictor_1/\1"),
    (r"^decoder_1d\.fc\.([02])\.(weight|bias)$", r"decoder_1d_\1/\2"),
    (r"^bias_class\.1\.(weight|bias)$", r"bias_class_1/\1"),
    # GHN-2 (GatedGNN)
    (r"^gnn\.(mlp|mlp_ve)\.fc\.([02])\.(weight|bias)$", r"gated_gnn/\1/fc_\2/\3"),
    (r"^gnn\.gru\.(weight_ih|weight_hh|bias_ih|bias_hh)$", r"gated_gnn/gru/\1"),
]


def torch_key_to_flax(key: str) -> Optional[str]:
    for pat, rep in _RULES:
        if re.match(pat, key):
            path = re.sub(pat, rep, key)
            return path[: -len("weight")] + "kernel" if path.endswith("/weight") else path
    return None


def flax_to_torch_key(path: str, layout: str = "released") -> str:
    """Inverse of torch_key_to_flax; layout 'released' puts the structural tables on top."""
    parts = path.split("/")
    leaf = {"kernel": "weight", "embedding": "weight", "scale": "weight", "bias": "bias"}[parts[-1]]
    mod = parts[:-1]
    head = mod[0]
    if head == "ln":
        return f"ln.{leaf}"
    if head == "embed":
        return "embed.weight"
    if head in ("embed_channel", "embed_spatial"):
        return f"shape_enc.{head}.weight"
    if head.startswith("gnn_"):
        i = head[4:]
        sub = mod[1]
        if sub in ("centrality_embed_in", "centrality_embed_out", "input_dist_embed"):
            return f"{sub}.weight" if layout == "released" else f"gnn.0.{sub}.weight"
        table = {"ln1": f"ln1.{leaf}", "ln2": f"ln2.{leaf}", "to_qkv": "attn.to_qkv.weight",
                 "to_out": f"attn.to_out.0.{leaf}", "edge_embed": "attn.edge_embed.embed.weight",
                 "proj_e_0": f"attn.proj_e.0.{leaf}", "proj_e_2": f"attn.proj_e.2.{leaf}",
                 "ff_0": f"ff.net.0.{leaf}", "ff_3": f"ff.net.3.{leaf}"}
        return f"gnn.{i}.{table[sub]}"
    if head == "decoder":
        sub = mod[1]
        table = {"fc_0": "fc.0", "conv_0": "conv.0", "conv_2": "conv.2",
                 "class_layer_predictor_1": "class_layer_predictor.1"}
        return f"decoder.{table[sub]}.{leaf}"
    if head in ("decoder_1d_0", "decoder_1d_2"):
        return f"decoder_1d.fc.{head[-1]}.{leaf}"
    if head == "bias_class_1":
        return f"bias_class.1.{leaf}"
    if head == "gated_gnn":
        if mod[1] == "gru":
            return f"gnn.gru.{parts[-1]}"
        return f"gnn.{mod[1]}.fc.{mod[2][-1]}.{leaf}"
    raise KeyError(path)


def flax_to_torch_state_dict(params, layout: str = "released") -> Dict[str, np.ndarray]:
    """Flax GHN-3 params -> the reference's state dict (numpy arrays, torch layout)."""
    out = {}
    for path, v in tree_paths.flatten(params).items():
        v = np.asarray(v, np.float32)
        out[flax_to_torch_key(path, layout)] = np.ascontiguousarray(v.T if path.endswith("/kernel") else v)
    return out


def infer_config(state_dict: Mapping[str, np.ndarray]) -> GHNConfig:
    """The config `from_pretrained` infers from the keys (§3.2)."""
    keys = list(state_dict)
    is_ghn2 = any("gnn.gru." in k for k in keys)
    cls = next((k for k in keys if "class_layer_predictor" in k), None)
    if cls is None or "embed.weight" not in state_dict:
        raise CheckpointError("not a GHN-3 state dict: no 'embed.weight' / 'class_layer_predictor'")
    num_classes = int(np.shape(state_dict[cls])[0])
    hid = int(np.shape(state_dict["embed.weight"])[-1])
    spatial = 16 if num_classes >= 1000 else 11
    if "shape_enc.embed_spatial.weight" in state_dict:
        spatial = 11 if np.shape(state_dict["shape_enc.embed_spatial.weight"])[0] == 9 else 16
    conv2 = state_dict.get("decoder.conv.2.weight")
    if conv2 is None:
        raise CheckpointError("not a GHN-3 state dict: no 'decoder.conv.2.weight'")
    m = int(round(math.sqrt(np.shape(conv2)[0])))
    layers = sum(1 for k in keys if k.startswith("gnn.") and k.endswith("ln1.weight"))
    return GHNConfig(hid=hid, layers=layers, heads=16 if hid > 64 else 8, max_shape=(m, m, spatial, spatial),
                     num_classes=num_classes, layernorm="ln.weight" in state_dict, is_ghn2=is_ghn2)


def torch_state_dict_to_flax(state_dict: Mapping[str, Any], config: Optional[GHNConfig] = None):
    """(config, Flax params) from a reference GHN-3 state dict (either layout)."""
    sd = {k: _numpy(v) for k, v in state_dict.items()}
    config = config or infer_config(sd)
    flat: Dict[str, np.ndarray] = {}
    for k, v in sd.items():
        path = torch_key_to_flax(k)
        if path is None:
            raise CheckpointError(f"unexpected key '{k}' in GHN-3 checkpoint")
        if path.endswith("/kernel"):
            if v.ndim == 4 and v.shape[2:] == (1, 1):   # 1x1-conv decoder weights of old files
                v = v[:, :, 0, 0]
            v = v.T
        flat[path] = np.ascontiguousarray(v, np.float32)
    params = tree_paths.unflatten(flat)
    _check_shapes(params, config)
    return config, params


def _check_shapes(params, config: GHNConfig):
    expected = abstract_params(config)
    exp_flat = tree_paths.flatten(expected)
    got = tree_paths.flatten(params)
    missing = sorted(set(exp_flat) - set(got))
    if missing:
        raise CheckpointError(f"GHN-3 checkpoint is missing {len(missing)} tensors, e.g. '{missing[0]}'")
    for k, v in exp_flat.items():
        if tuple(got[k].shape) != tuple(v.shape):
            raise CheckpointError(f"GHN-3 checkpoint tensor '{k}' has shape {tuple(got[k].shape)}, "
                                  f"expected {tuple(v.shape)} for {config}")
    extra = sorted(set(got) - set(exp_flat))
    if extra:
        raise CheckpointError(f"unexpected tensor '{extra[0]}' in GHN-3 checkpoint")


def abstract_params(config: GHNConfig):
    import jax
    import jax.numpy as jnp
    from ghn_jax.ghn.model import GHN3
    m = ghn_module(config)
    b, n = 1, 2
    return jax.eval_shape(lambda: m.init(jax.random.PRNGKey(0), jnp.zeros((b, n), jnp.int32),
                                         jnp.zeros((b, n, 4), jnp.int32), jnp.zeros((b, n, n), jnp.int32),
                                         jnp.ones((b, n), bool), method=GHN3.init_all))["params"]


def ghn_module(config: GHNConfig):
    from ghn_jax.ghn.model import GHN3
    return GHN3(hid=config.hid, layers=config.layers, heads=config.heads, max_shape=tuple(config.max_shape),
                num_classes=config.num_classes, layernorm=config.layernorm, is_ghn2=config.is_ghn2)


def _numpy(v) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def load_torch_checkpoint(path: str, trust_pickle: bool = False):
    """(config, Flax params) from a reference checkpoint file (joblib or torch.save).

    Both formats are pickles, which can run arbitrary code when loaded: they are only
    opened with trust_pickle=True.
    """
    if not trust_pickle:
        raise CheckpointError(
            f"'{path}' is a pickle (joblib / torch.save), and loading a pickle can execute code. "
            f"Pass --trust-pickle (trust_pickle=True) if you trust its source; it is converted once "
            f"and cached as safetensors.")
    obj = _unpickle(path)
    config = None
    if isinstance(obj, Mapping) and "state_dict" in obj:
        cfg = obj.get("config")
        sd = obj["state_dict"]
        if cfg:
            ms = cfg.get("max_shape")
            config = GHNConfig(hid=int(cfg.get("hid", 64)), layers=int(cfg.get("layers", 3)),
                               heads=int(cfg.get("heads", 8)),
                               max_shape=tuple(int(x) for x in (ms if isinstance(ms, (list, tuple)) else (ms,) * 4)),
                               num_classes=int(cfg.get("num_classes", 1000)),
                               layernorm=bool(cfg.get("layernorm", True)))
    elif isinstance(obj, Mapping):
        sd = obj
    else:
        raise CheckpointError(f"'{path}' does not hold a GHN state dict (got {type(obj).__name__})")
    return torch_state_dict_to_flax(sd, config)


def _unpickle(path: str):
    try:
        import joblib
        try:
            return joblib.load(path)
        except (KeyError, ValueError, EOFError, Exception) as first:  # not a joblib file
            import torch
            try:
                return torch.load(path, map_location="cpu", weights_only=False)
            except Exception:
                raise CheckpointError(f"'{path}' is not a readable GHN checkpoint (truncated or corrupt?): "
                                      f"{type(first).__name__}: {first}") from None
    except ImportError as e:
        raise CheckpointError(f"reading '{path}' needs torch and joblib: pip install 'ghn_jax[torch]' ({e})")
