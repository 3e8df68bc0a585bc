"""GHN: a loaded hypernetwork that predicts the parameters of any architecture.

    ghn = GHN.from_pretrained('ghn3tm8', trust_pickle=True)
    variables, report = ghn.predict('resnet50')          # Flax {'params', 'batch_stats'}

The GHN forward (embedding + Graphormer) is one jitted function per padded node-count
bucket; decoding is one jitted call per (decoder, spatial window, node-count bucket).
Tiling and normalisation then shape each prediction into its parameter.
"""
import dataclasses
import functools
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import jax
import jax.numpy as jnp
import flax.linen as nn

from ghn_jax.errors import GhnError
from ghn_jax.ghn import assign
from ghn_jax.ghn.checkpoint import GHNConfig, ghn_module
from ghn_jax.ghn.model import GHN3
from ghn_jax.ghn.shape_encoder import shape_indices
from ghn_jax.graph import ArchGraph, build_graph
from ghn_jax.graph.batch import bucket_size, pad_graphs
from ghn_jax.export.torch_params import _KERNEL_TO_FLAX


@dataclasses.dataclass
class PredictionReport:
    arch: str
    predicted: List[str]               # Flax param paths written by the GHN
    not_predicted: List[str]           # Flax param paths left at the model's init
    total_norm: float                  # L2 norm over all predicted tensors
    seconds: Dict[str, float]


def _pow2(n: int) -> int:
    return 1 << max(0, int(n - 1).bit_length())


class GHN:
    """A GHN-3 with its parameters, ready to predict."""

    def __init__(self, config: GHNConfig, params: Any):
        self.config = config
        self.module: GHN3 = ghn_module(config)
        self.params = jax.tree_util.tree_map(jnp.asarray, params)
        m = self.module

        @jax.jit
        def embed(params, types, shape_ind, spd, valid):
            return m.apply({"params": params}, types, shape_ind, spd, valid)
        self._embed = embed

        @functools.partial(jax.jit, static_argnums=(2, 3))
        def decode_conv(params, z, rows, cols):
            return m.apply({"params": params}, z, rows, cols, method=GHN3.decode_conv)
        self._decode_conv = decode_conv
        self._decode_class = jax.jit(lambda p, z: m.apply({"params": p}, z, method=GHN3.decode_class))
        self._decode_1d = jax.jit(lambda p, z: m.apply({"params": p}, z, method=GHN3.decode_1d))
        self._decode_cb = jax.jit(lambda p, z: m.apply({"params": p}, z, method=GHN3.decode_class_bias))

    @classmethod
    def from_pretrained(cls, name_or_path: str, trust_pickle: bool = False, **kwargs) -> "GHN":
        from ghn_jax.ghn.hub import load_ghn
        config, params = load_ghn(name_or_path, trust_pickle=trust_pickle, **kwargs)
        return cls(config, params)

    # -- the GHN forward ------------------------------------------------------------------
    def embed_graph(self, graph: ArchGraph):
        """(N, hid) float32 node embeddings after the final LayerNorm."""
        batch = pad_graphs([graph])
        si = shape_indices(batch.node_types, batch.shapes, self.config.num_classes, self.config.max_shape[2])
        x = self._embed(self.params, batch.node_types, si, batch.spd.astype(np.int32), batch.mask)
        return x[0, : graph.n_nodes]

    def decode(self, graph: ArchGraph, z, rng: jax.Array) -> Dict[str, jax.Array]:
        """{Flax param path: tensor in torch layout} for every node with a parameter."""
        cfg = self.config
        co, ci, s, _ = cfg.max_shape
        tasks = assign.plan(graph, cfg.max_shape)
        out: Dict[str, jax.Array] = {}

        def gather(idx):
            n = len(idx)
            pad = _pow2(n)
            return jnp.take(z, jnp.asarray(list(idx) + [idx[0]] * (pad - n)), axis=0)

        groups: Dict[Tuple, List[assign.NodeTask]] = {}
        for t in tasks:
            groups.setdefault((t.kind, t.window if t.kind == "conv" else None), []).append(t)
        rng_pos = rng
        for (kind, win), ts in groups.items():
            idx = [t.node for t in ts]
            if kind == "conv":
                preds = self._decode_conv(self.params, gather(idx), win[0], win[1])
            elif kind == "class":
                preds = self._decode_class(self.params, gather(idx))
            elif kind == "1d":
                preds = self._decode_1d(self.params, gather(idx))
            else:
                preds = self._decode_cb(self.params, gather(idx))
            for j, t in enumerate(ts):
                name = graph.param_names[t.node]
                p = preds[j]
                if kind == "conv":
                    p = p[: t.key_out, : t.key_in]
                    if len(t.target) == 3:            # positional embedding (1, T, C)
                        rng_pos, k = jax.random.split(rng_pos)
                        w = assign.tile_pos(p, t.target, k)
                    elif len(t.target) == 2:
                        w = assign.tile_2d(p[:, :, p.shape[2] // 2, p.shape[3] // 2], t.target)
                    else:
                        kh, kw = t.target[2:]
                        if kh > s or kw > s:
                            p = assign.resize_bilinear(p, (kh, kw))
                        w = assign.tile_conv(p, t.target, (kh, kw))
                    out[name] = assign.normalise(w, t.target)
                elif kind == "class":
                    w = assign.tile_2d(p[:, : t.key_in], t.target[:2])
                    if len(t.target) == 4:
                        w = w.reshape(t.target)
                    out[name] = assign.normalise(w, t.target)
                elif kind == "1d":
                    out[name] = assign.normalise(assign.tile_1d(p[t.row], t.target[0]), t.target,
                                                 norm_weight=t.norm_weight)
                    for extra in graph.extra_params[t.node]:   # a norm's bias: row 1 of its node
                        out[extra] = assign.normalise(assign.tile_1d(p[1], t.target[0]), t.target)
                else:
                    out[name] = assign.normalise(assign.tile_1d(p, t.target[0]), t.target)
        return out

    # -- end to end -----------------------------------------------------------------------
    def predict(self, model: Union[str, nn.Module, ArchGraph], input_shape: Optional[Sequence[int]] = None,
                *, num_classes: Optional[int] = None, rng: Union[int, jax.Array] = 0):
        """Predicted Flax variables {'params', 'batch_stats'} and a PredictionReport.

        Parameters no node predicts keep the model's own initialisation (listed in the
        report). batch_stats are torch's initial running statistics (mean 0, var 1): the
        reference evaluates predicted networks with batch statistics (BatchNorm in train
        mode), so run the model with train=True or fine-tune before using running stats.
        """
        times = {}
        t0 = time.perf_counter()
        module = None
        if isinstance(model, ArchGraph):
            graph = model
        else:
            if isinstance(model, str):
                from ghn_jax import zoo
                entry = zoo.entry(model)
                module = entry.builder(num_classes=num_classes or self.config.num_classes)
                size = entry.input_size
                name = entry.name
            else:
                module, size, name = model, 224, type(model).__name__
            shape = input_shape or (2, size, size, 3)
            graph = build_graph(module, shape, name=name)
        times["graph"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        key = jax.random.PRNGKey(rng) if isinstance(rng, int) else rng
        z = self.embed_graph(graph)
        torch_layout = self.decode(graph, z, key)
        predicted = jax.block_until_ready(to_flax_params(torch_layout, graph.abstract_variables))
        times["ghn"] = time.perf_counter() - t1
        variables = complete_variables(predicted, graph, module, key)
        norm = float(np.sqrt(sum(float(jnp.sum(jnp.square(v))) for v in torch_layout.values())))
        pred_names = sorted(torch_layout)
        report = PredictionReport(graph.name, pred_names, list(graph.not_predicted), norm, times)
        return variables, report


def to_flax_params(torch_layout: Dict[str, jax.Array], abstract_variables) -> Dict[str, jax.Array]:
    """{path: torch-layout tensor} -> {path: tensor in the Flax variable's layout}."""
    out = {}
    for path, v in torch_layout.items():
        keys = path.split("/")
        leaf = abstract_variables
        for k in keys:
            leaf = leaf[k]
        shape = tuple(leaf.shape)
        if keys[-1] == "kernel":
            if v.ndim == len(shape) and v.ndim in _KERNEL_TO_FLAX:
                v = jnp.transpose(v, _KERNEL_TO_FLAX[v.ndim])
            else:                                   # DenseGeneral: torch (out, in) -> (in..., out...)
                v = v.T.reshape(shape)
        if tuple(v.shape) != shape:
            raise GhnError(f"predicted '{path}' has shape {tuple(v.shape)}, the model needs {shape}")
        out[path] = v.astype(leaf.dtype)
    return out


def complete_variables(predicted: Dict[str, jax.Array], graph: ArchGraph, module: Optional[nn.Module],
                       key: jax.Array):
    """The model's full variables: predictions, running stats 0/1, the rest at init."""
    flat_abstract = jax.tree_util.tree_flatten_with_path(graph.abstract_variables)
    init_vals = None
    if graph.not_predicted:
        if module is None:
            raise GhnError("parameters without a GHN node need the Flax module to be initialised")
        x = jnp.zeros((1,) + tuple(graph.input_shape[1:]), jnp.float32)
        init_vals = jax.jit(lambda k: module.init(k, x))(key)
    leaves = []
    for kp, leaf in flat_abstract[0]:
        keys = tuple(getattr(k, "key", str(k)) for k in kp)
        path = "/".join(keys)
        if path in predicted:
            leaves.append(predicted[path])
        elif keys[0] == "batch_stats":
            fill = 1.0 if keys[-1] == "var" else 0.0
            leaves.append(jnp.full(leaf.shape, fill, leaf.dtype))
        else:
            v = init_vals
            for k in keys:
                v = v[k]
            leaves.append(v)
    return jax.tree_util.tree_unflatten(flat_abstract[1], leaves)
