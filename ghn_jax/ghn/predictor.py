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
import zlib
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import jax
import jax.numpy as jnp
import flax.linen as nn

from ghn_jax import compile_options, tree_paths
from ghn_jax.errors import GhnError
from ghn_jax.ghn import assign, programs
from ghn_jax.ghn.checkpoint import GHNConfig, ghn_module
from ghn_jax.ghn.model import GHN3
from ghn_jax.ghn.shape_encoder import shape_indices
from ghn_jax.graph import ArchGraph, build_graph
from ghn_jax.graph.batch import bucket_size, pad_graphs, pad_ints, pow2
from ghn_jax.graph.tracer import zero_initialisers


@dataclasses.dataclass
class PredictionReport:
    arch: str
    predicted: List[str]               # Flax param paths written by the GHN
    not_predicted: List[str]           # Flax param paths left at the model's init
    total_norm: float                  # L2 norm over all predicted tensors
    seconds: Dict[str, float]


class _LazyKey:
    """An int seed or a key, turned into a PRNG key on first use."""

    def __init__(self, rng):
        self.rng, self._key = rng, None

    @staticmethod
    def get(k):
        if not isinstance(k, _LazyKey):
            return k
        if k._key is None:
            k._key = _prng_key(k.rng) if isinstance(k.rng, int) else k.rng
        return k._key

    @staticmethod
    def numpy_rng(k, *salt: int) -> np.random.Generator:
        """A numpy generator determined by the key (or seed) and `salt`; nothing is compiled."""
        seed = k.rng if isinstance(k, _LazyKey) and isinstance(k.rng, int) else _LazyKey.get(k)
        if not isinstance(seed, int):
            if jnp.issubdtype(seed.dtype, jax.dtypes.prng_key):
                seed = jax.random.key_data(seed)
            seed = [int(v) for v in np.asarray(seed).ravel()]
        else:
            seed = [seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF]
        return np.random.default_rng(seed + [int(s) for s in salt])


def _prng_key(seed: int):
    """jax.random.PRNGKey(seed) without a compile (a cold predict pays ~0.05 s per eager op):
    threefry's key is [high, low] 32 bits of the seed."""
    if jax.config.jax_default_prng_impl == "threefry2x32" and 0 <= seed < 2 ** 32:
        return jnp.asarray(np.array([0, seed], np.uint32))
    return jax.random.PRNGKey(seed)


def _forward(module: GHN3, params, types, shape_ind, spd, valid, conv_nodes, slot, r, c, one_d, last_w, last_b,
             *, group_sizes, blocks, box):
    """The whole GHN on one padded graph: (B=1, M) inputs -> embeddings and decoder outputs."""
    v = {"params": params}
    x = module.apply(v, types, shape_ind, spd, valid)[0]                       # (M, hid)
    pix = module.apply(v, x[conv_nodes], slot, r, c, group_sizes, blocks, box, method=GHN3.decode_pixel_blocks)
    rows = module.apply(v, x[one_d], method=GHN3.decode_1d)
    cw = module.apply(v, x[last_w][None], method=GHN3.decode_class)[0]
    cb = module.apply(v, x[last_b][None], method=GHN3.decode_class_bias)[0]
    return x, pix, rows, cw, cb


def _traced_forward(module: GHN3, *args, group_sizes, blocks, box):
    # Flax checks every parameter's shape by tracing its initialiser (only at trace
    # time); zero initialisers make that check cheap.
    with zero_initialisers():
        return _forward(module, *args, group_sizes=group_sizes, blocks=blocks, box=box)


class GHN:
    """A GHN-3 with its parameters, ready to predict."""

    def __init__(self, config: GHNConfig, params: Any):
        self.config = config
        self.module: GHN3 = ghn_module(config)
        self.params = jax.tree_util.tree_map(jnp.asarray, params)
        # This program's time is in library matmuls, so the cheapest compile costs it no
        # speed and a third of a cold predict's compile time.
        self._compiler_options = compile_options.quick()

    @classmethod
    def from_pretrained(cls, name_or_path: str, trust_pickle: bool = False, **kwargs) -> "GHN":
        from ghn_jax.ghn.hub import load_ghn
        config, params = load_ghn(name_or_path, trust_pickle=trust_pickle, **kwargs)
        return cls(config, params)

    # -- the GHN forward ------------------------------------------------------------------
    def run(self, graph: ArchGraph, tasks: List[assign.NodeTask]):
        """One jitted call: embeddings, decoder outputs of every window pixel, 1-D rows, class layers.

        Returns numpy arrays: x (N, hid), pixel outputs {task index: (h*w, a*b) block of
        the (Co, Ci) output}, rows_1d (n1, 2, max_ch), class_w (K, Ci), class_b (K,). Pixels
        are grouped by the channel block their targets need (rounded up to powers of two) and
        every size is padded to a bucket, so architectures of similar size share a program.
        """
        cfg = self.config
        co, ci, s, _ = cfg.max_shape
        batch = pad_graphs([graph])
        si = shape_indices(batch.node_types, batch.shapes, cfg.num_classes, s)
        conv = [(j, t) for j, t in enumerate(tasks) if t.kind == "conv"]
        groups: Dict[Tuple[int, int], List] = {}
        for slot, (j, t) in enumerate(conv):
            a = min(pow2(min(t.key_out, t.target[0])), co)
            b = min(pow2(min(t.key_in, t.target[1])), ci)
            if a * b * 8 > co * ci:
                a, b = co, ci        # slicing a large block of the weight costs more than it saves
            groups.setdefault((a, b), []).append((slot, j, t))
        blocks, sizes, slot_a, r_a, c_a, where = [], [], [], [], [], {}
        for (a, b), items in sorted(groups.items()):
            count = 0
            for slot, j, t in items:
                (r0, r1), (c0, c1) = t.window
                where[j] = (len(blocks), count, (r1 - r0) * (c1 - c0), a, b)
                for rr in range(r0, r1):
                    for cc in range(c0, c1):
                        slot_a.append(slot)
                        r_a.append(rr)
                        c_a.append(cc)
                        count += 1
            pad = bucket_size(count)
            slot_a += [0] * (pad - count)
            r_a += [0] * (pad - count)
            c_a += [0] * (pad - count)
            blocks.append((a, b))
            sizes.append(pad)
        conv_nodes = pad_ints([t.node for _, t in conv], pow2(max(1, len(conv))))
        one_d = [t.node for t in tasks if t.kind == "1d"]
        n = graph.n_nodes
        args = (self.params, batch.node_types, si, batch.spd.astype(np.int32), batch.mask, conv_nodes,
                np.asarray(slot_a, np.int32), np.asarray(r_a, np.int32), np.asarray(c_a, np.int32),
                pad_ints(one_d, pow2(max(1, len(one_d)))), np.int32(n - 2), np.int32(n - 1))
        static = {"group_sizes": tuple(sizes), "blocks": tuple(blocks),
                  "box": assign.pixel_box(tasks, s, centre=not cfg.is_ghn2)}
        key = programs.program_key("ghn-forward", args, [cfg.to_dict(), static])
        forward = programs.get(key, lambda: (jax.jit(functools.partial(_traced_forward, self.module, **static)),
                                             args), self._compiler_options)
        x, pix, rows, cw, cb = jax.device_get(forward(*args))
        pixels = {j: pix[g][start:start + count].reshape(count, a, b) for j, (g, start, count, a, b) in where.items()}
        return x[:n], pixels, rows[: len(one_d)], cw, cb

    def blocks(self, graph: ArchGraph, rng: jax.Array, tasks: Optional[List[assign.NodeTask]] = None,
               timings: Optional[Dict[str, float]] = None):
        """[(Flax param path, normalised block in torch layout, target torch shape)].

        A block is the GHN's prediction for one parameter before periodic tiling: its
        channels are sliced to the target, its spatial size is final. Normalisation is
        applied here, on the block: it is element-wise (or one scalar per tensor), so it
        commutes with tiling, and the large tiled tensor is written only once.
        """
        cfg = self.config
        co, ci, s, _ = cfg.max_shape
        t0 = time.perf_counter()
        tasks = tasks if tasks is not None else assign.plan(graph, cfg.max_shape, centre=not cfg.is_ghn2)
        _, pix, rows, cw, cb = self.run(graph, tasks)
        if timings is not None:
            timings["ghn"] = time.perf_counter() - t0
        out = []
        i1 = 0
        for j, t in enumerate(tasks):
            name = graph.param_names[t.node]
            if t.kind == "conv":
                (r0, r1), (c0, c1) = t.window
                h, w = r1 - r0, c1 - c0
                block = pix[j]                                   # (h*w, a, b)
                p = block.reshape(h, w, *block.shape[1:]).transpose(2, 3, 0, 1)
                p = p[: min(t.key_out, t.target[0]), : min(t.key_in, t.target[1])]
                if len(t.target) == 3:                    # positional embedding (1, T, C)
                    # The reference draws this row from torch's global RNG at every call.
                    gen = _LazyKey.numpy_rng(rng, zlib.crc32(name.encode()))
                    cls_row = (0.02 * gen.standard_normal((1, 1, p.shape[1]))).astype(np.float32)
                    v = assign.tile_pos(p, t.target, cls_row)
                elif len(t.target) == 2:
                    v = p[:, :, h // 2, w // 2]
                else:
                    kh, kw = t.target[2:]
                    if kh > s or kw > s:
                        p = assign.resize_bilinear(p, (kh, kw))
                    v = p
                out.append((name, assign.normalise(v, t.target), t.target))
            elif t.kind == "class":
                v = cw[: t.target[0], : min(t.key_in, t.target[1])]
                if len(t.target) == 4:
                    v = v[:, :, None, None]
                out.append((name, assign.normalise(v, t.target), t.target))
            elif t.kind == "1d":
                p = rows[i1]
                i1 += 1
                v = p[t.row][: t.target[0]]
                out.append((name, assign.normalise(v, t.target, norm_weight=t.norm_weight), t.target))
                for extra in graph.extra_params[t.node]:       # a norm's bias: row 1 of its node
                    out.append((extra, assign.normalise(p[1][: t.target[0]], t.target), t.target))
            else:
                out.append((name, assign.normalise(cb[: t.target[0]], t.target), t.target))
        return out

    def decode(self, graph: ArchGraph, rng: jax.Array, tasks: Optional[List[assign.NodeTask]] = None,
               timings: Optional[Dict[str, float]] = None) -> Dict[str, np.ndarray]:
        """{Flax param path: numpy tensor in torch layout} for every node with a parameter."""
        blocks = self.blocks(graph, rng, tasks, timings)
        t0 = time.perf_counter()
        out = {name: assign.periodic(b, t) for name, b, t in blocks}
        if timings is not None:
            timings["tiling"] = time.perf_counter() - t0
        return out

    # -- end to end -----------------------------------------------------------------------
    def __call__(self, model: Union[str, nn.Module, ArchGraph], *args, **kwargs):
        """Predicted Flax variables of `model` (see `predict`, which also returns a report)."""
        return self.predict(model, *args, **kwargs)[0]

    def predict(self, model: Union[str, nn.Module, ArchGraph], input_shape: Optional[Sequence[int]] = None,
                *, num_classes: Optional[int] = None, rng: Union[int, jax.Array] = 0,
                tile_classifier: bool = False):
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
                from ghn_jax.graph.cache import zoo_graph
                n_cls = num_classes or self.config.num_classes
                graph = zoo_graph(model, n_cls, input_shape)
                if graph.not_predicted:
                    module = zoo.get(model, num_classes=n_cls)
            else:
                module = model
                graph = build_graph(module, input_shape or (2, 224, 224, 3), name=type(model).__name__)
        times["graph"] = time.perf_counter() - t0
        self._check_classes(graph, tile_classifier)
        key = _LazyKey(rng)          # a PRNG key costs a compile: made only if needed
        blocks = self.blocks(graph, key, timings=times)
        t2 = time.perf_counter()
        predicted = {name: to_flax_layout(b, t, tree_paths.get(graph.abstract_variables, name), name)
                     for name, b, t in blocks}
        variables = complete_variables(predicted, graph, module, key)
        times["tiling"] = time.perf_counter() - t2
        norm = float(np.sqrt(sum(float(np.dot(v.ravel(), v.ravel())) for v in predicted.values())))
        pred_names = sorted(predicted)
        report = PredictionReport(graph.name, pred_names, list(graph.not_predicted), norm, times)
        return variables, report


    def _check_classes(self, graph: ArchGraph, tile_classifier: bool):
        k = self.config.num_classes
        n_out = graph.target_shapes[graph.n_nodes - 1]
        n_out = int(n_out[0]) if n_out else None
        if n_out is not None and n_out != k and not tile_classifier:
            raise GhnError(
                f"{graph.name} has {n_out} classes but this GHN predicts {k}-class classifiers. "
                f"Use --num-classes {k}, or pass --tile-classifier (tile_classifier=True) to tile the "
                f"{k}-class prediction as the reference does (meaningful only as an init for fine-tuning)")


def to_flax_layout(block: np.ndarray, target: Tuple[int, ...], leaf, path: str) -> np.ndarray:
    """A normalised torch-layout block -> the Flax variable, tiled in place in its layout."""
    shape = tuple(leaf.shape)
    out = assign.to_leaf(block, target, shape, path.endswith("/kernel"))
    if out.shape != shape:
        raise GhnError(f"predicted '{path}' has shape {out.shape}, the model needs {shape}")
    return out.astype(leaf.dtype, copy=False)


def complete_variables(predicted: Dict[str, np.ndarray], graph: ArchGraph, module: Optional[nn.Module],
                       key: jax.Array):
    """The model's full variables: predictions, running stats 0/1, the rest at init.

    Parameters without a node are drawn from the model's own initialisers, each with a key
    folded from its path, never by initialising the whole model (`initial_values`).
    """
    flat_abstract = jax.tree_util.tree_flatten_with_path(graph.abstract_variables)
    missing = []
    leaves = []
    for kp, leaf in flat_abstract[0]:
        keys = tuple(getattr(k, "key", str(k)) for k in kp)
        path = "/".join(keys)
        if path in predicted:
            leaves.append(predicted[path])
        elif keys[0] == "batch_stats":
            fill = 1.0 if keys[-1] == "var" else 0.0
            leaves.append(np.full(leaf.shape, fill, leaf.dtype))
        else:
            missing.append((len(leaves), keys, leaf))
            leaves.append(None)
    if missing:
        values = initial_values(graph, module, [(keys, leaf) for _, keys, leaf in missing], _LazyKey.get(key))
        for (i, _, _), value in zip(missing, values):
            leaves[i] = value
    return jax.tree_util.tree_unflatten(flat_abstract[1], leaves)


def initial_values(graph: ArchGraph, module: Optional[nn.Module], missing: List[Tuple[Tuple[str, ...], Any]],
                   key: jax.Array) -> List[np.ndarray]:
    """The model's own initial values of `missing` [(variable path keys, abstract leaf)].

    One program draws them all, each from fold_in(key, crc32(path)), so a value does not
    depend on which other parameters the GHN predicts. For zoo graphs the program is kept
    as an exported artifact (`programs`): a fresh process neither re-traces the model to
    find its initialisers nor traces them.
    """
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    paths = ["/".join(k) for k, _ in missing]

    def build():
        initialisers = graph.initialisers
        if not all(k in initialisers for k, _ in missing):
            if module is None:
                raise GhnError("parameters without a GHN node need the Flax module to be initialised")
            from ghn_jax.graph.tracer import record_initialisers
            initialisers = record_initialisers(module, (1,) + tuple(graph.input_shape[1:]))
            graph.initialisers = initialisers          # graphs are cached: record once
        recipes = [initialisers[k] for k, _ in missing]

        def draw(k):
            return [jnp.asarray(fn(jax.random.fold_in(k, zlib.crc32(p.encode()) & 0x7FFFFFFF), *args, **kwargs),
                                leaf.dtype)
                    for (fn, args, kwargs), p, (_, leaf) in zip(recipes, paths, missing)]
        return jax.jit(draw), (key,)

    if graph.origin:
        spec = [graph.origin, [[p, list(leaf.shape), str(leaf.dtype)] for p, (_, leaf) in zip(paths, missing)]]
        draw = programs.get(programs.program_key("model-init", (key,), spec), build)
    else:
        draw = build()[0]
    values = [np.asarray(v) for v in jax.device_get(draw(key))]
    for p, v, (_, leaf) in zip(paths, values, missing):
        if v.shape != tuple(leaf.shape):
            raise GhnError(f"initialiser of '{p}' gave shape {v.shape}, expected {tuple(leaf.shape)}")
    return values
