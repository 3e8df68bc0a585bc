"""One meta-batch: GHN -> predicted parameters -> executor -> loss -> gradients into the GHN.

    step = MetaStep(ghn_module)
    out = step(ghn_params, [MetaNet(...), ...], images, labels)    # loss, per-net CE, grads

The GHN part is one jitted program per padding bucket (nodes, conv pixels, 1-D nodes):
embeddings, then the decoders on exactly the nodes and window pixels the meta-batch
needs. Shaping one node's decoder output into its parameter (channel slice, centre
pixel or bilinear resize, fan-in normalisation, periodic tiling, Flax layout; §2.8-2.9)
is a small cached kernel keyed by (block shape, target shape), like the executor's op
kernels. Gradients flow back the same way: executor tape -> assign kernels -> one
jitted VJP of the GHN program. The small programs between the two (a node's block sliced
out of the GHN outputs, its cotangent written back, the cotangents' zeros) follow the
padding bucket too; like everything a stream compiles per bucket or signature, they go
through the kernel store (`bucket_program`).

The loss is the reference's (§4.5): (Σ_nets CE(label smoothing) + λ Σ_nets Σ_p ||p||_F) / m.
"""
import dataclasses
import functools
from typing import Any, Dict, List, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ghn_jax import compile_options, tree_paths
from ghn_jax.errors import GhnError
from ghn_jax.deepnets import kernel_store, pacing
from ghn_jax.deepnets.executor import (Executor, Raw, abstract as _abstract, compile_abstract, cross_entropy_and_grad,
                                       placement, put_global, signature)
from ghn_jax.deepnets.network import NetPlan
from ghn_jax.ghn import assign
from ghn_jax.ghn.model import GHN3
from ghn_jax.ghn.shape_encoder import shape_indices
from ghn_jax.graph import ArchGraph
from ghn_jax.graph.batch import bucket_size, pad_graphs, pad_ints, pow2


_PRECOMPILED: Dict[Any, Any] = {}   # signature -> abstract outputs (see MetaStep.precompile)


@dataclasses.dataclass
class MetaNet:
    """One architecture of a meta-batch: its op plan, its graph and its abstract params."""
    plan: NetPlan
    graph: ArchGraph


def _ghn_program(module: GHN3, box, params, types, shape_ind, spd, valid, conv_nodes, slot, r, c, one_d, last_w,
                 last_b):
    """(B graphs) -> pixels (P, Co*Ci), 1-D rows (n1, 2, ch), class weights (B, K, Ci), biases (B, K).
    box: the decoder-map window holding every pixel (static, `assign.pixel_box`)."""
    v = {"params": params}
    x = module.apply(v, types, shape_ind, spd, valid)                 # (B, M, hid)
    x = x.reshape(-1, x.shape[-1])
    h = module.apply(v, x[conv_nodes], slot, r, c, method=lambda m, z, s, rr, cc: m.decoder.pixel_hidden(z, s, rr, cc, box))
    pix = module.apply(v, h, method=lambda m, hh: m.decoder.conv_2(hh))
    rows = module.apply(v, x[one_d], method=GHN3.decode_1d)
    cw = module.apply(v, x[last_w], method=GHN3.decode_class)
    cb = module.apply(v, x[last_b], method=GHN3.decode_class_bias)
    return pix, rows, cw, cb


def _ghn_outputs(module, dtype, box, params, *inputs):
    """dtype: the GHN's compute dtype ('float32' or 'bfloat16'). Parameters stay float32 (the
    cast is inside the VJP, so their gradients are float32 too); outputs are float32, since
    the parameters built from them are normalised and tiled in float32."""
    if dtype != "float32":
        params = jax.tree_util.tree_map(lambda a: a.astype(dtype), params)
    return tuple(o.astype(jnp.float32) for o in _ghn_program(module, box, params, *inputs))


# ------------------------------------------------------------------------------------------
# Assign kernels: one node's decoder output -> its parameter(s), differentiable
# ------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Assign:
    kind: str                       # conv | class | 1d | class_bias
    target: Tuple[int, ...]         # torch layout
    leaf: Tuple[int, ...]           # Flax leaf shape
    is_kernel: bool
    hw: Tuple[int, int] = (1, 1)    # conv window
    keep: Tuple[int, int] = (0, 0)  # channels kept (out, in)
    max_s: int = 16
    row: int = 1
    norm_weight: bool = False
    bias_leaf: Tuple[int, ...] = ()  # 1-D norm nodes: also the bias from row 1


def _to_leaf(a: _Assign, v):
    return assign.to_leaf(v, a.target, a.leaf, a.is_kernel, xp=jnp)


def _assign_fn(a: _Assign, block):
    """block -> (leaves, sum of Frobenius norms)."""
    t = a.target
    if a.kind == "conv":
        h, w = a.hw
        co_ci = block.shape[-1]
        co = ci = int(round(co_ci ** 0.5))
        p = jnp.transpose(block.reshape(h, w, co, ci), (2, 3, 0, 1))[: a.keep[0], : a.keep[1]]
        if len(t) == 2:
            v = p[:, :, h // 2, w // 2]
        else:
            if t[2] > a.max_s or t[3] > a.max_s:
                p = assign.resize_bilinear(p, (t[2], t[3]), xp=jnp)
            v = p
        leaves = (_to_leaf(a, assign.normalise(v, t, xp=jnp)),)
    elif a.kind == "class":
        v = block[: t[0], : a.keep[1]]
        if len(t) == 4:
            v = v[:, :, None, None]
        leaves = (_to_leaf(a, assign.normalise(v, t, xp=jnp)),)
    elif a.kind == "class_bias":
        leaves = (_to_leaf(a, assign.normalise(block[: t[0]], t, xp=jnp)),)
    else:
        leaves = (_to_leaf(a, assign.normalise(block[a.row][: t[0]], t, norm_weight=a.norm_weight, xp=jnp)),)
        if a.bias_leaf:
            leaves += (assign.periodic(assign.normalise(block[1][: t[0]], t, xp=jnp), a.bias_leaf, jnp),)
    norm = sum(jnp.sqrt(jnp.sum(jnp.square(l))) for l in leaves)
    return leaves, norm


def _take(a, start, *, n: int, squeeze: bool):
    out = lax.dynamic_slice_in_dim(a, start, n, 0)
    return out[0] if squeeze else out


def _put(buf, start, g):
    g = g.astype(buf.dtype)
    return lax.dynamic_update_slice_in_dim(buf, g if g.ndim == buf.ndim else g[None], start, 0)


def _zeros(tree):
    return jax.tree_util.tree_map(jnp.zeros_like, tree)


@functools.lru_cache(None)
def _bucket_fn(name: str, static: Tuple, out_shardings=None):
    if name == "take":
        return jax.jit(functools.partial(_take, **dict(static)))
    if name == "put":
        return jax.jit(_put, donate_argnums=0)     # the cotangent buffer is written in place
    return jax.jit(_zeros) if out_shardings is None else jax.jit(_zeros, out_shardings=out_shardings)


def _zeros_shardings(args: Tuple):
    """Output shardings for the zeros of sharded GHN outputs: those of the outputs (None when
    unsharded). Left to XLA, the constants land on one device of this process, and in a
    multi-process run the cotangent writes, on the whole mesh, reject them as incompatible."""
    leaves, tree = jax.tree_util.tree_flatten(args[0])
    shardings = [placement(a) for a in leaves]
    return None if None in shardings else jax.tree_util.tree_unflatten(tree, shardings)


def bucket_program(name: str, static: Tuple, args: Tuple):
    """(compiled program, abstract output) of one of the small programs around the GHN's
    outputs: slicing a node's block out ('take', static (('n', n), ('squeeze', bool))),
    writing its cotangent back ('put') and the cotangent buffers' zeros ('zeros'). Their
    shapes follow the GHN padding bucket, so a stream meets new ones with each new bucket;
    they go through the kernel store like the GHN and executor programs (a census records
    them), and are called compiled. args: abstract arguments."""
    sig = ("bucket", name, static, signature(args))
    e = _PRECOMPILED.get(sig)
    if e is None:
        fn = _bucket_fn(name, static, _zeros_shardings(args) if name == "zeros" else None)
        e = _PRECOMPILED[sig] = kernel_store.compile_stored(("meta", name, static), fn, *args)
    return e


def bucket_output(name: str, static: Tuple, args: Tuple):
    """The abstract output of a bucket program, by shape inference alone."""
    return jax.eval_shape(_bucket_fn(name, static), *args)


def _step_programs():
    """run(key, name, static, *args): a bucket program on concrete arguments, looked up once
    per step for each `key` (the caller's shorthand for the arguments' shapes and
    placements). The full lookup (abstract arguments, their signature) costs more than the
    call itself: ~70 us against ~13 us, and a step makes hundreds of calls."""
    found = {}

    def run(key, name: str, static: Tuple, *args):
        f = found.get(key)
        if f is None:
            f = found[key] = bucket_program(name, static, _abstract(args))[0]
        return f(*args)
    return run


def _take_static(job) -> Tuple:
    return (("n", job.n), ("squeeze", job.src != "pix"))


def _bucket_walk(jobs, outs, program) -> List:
    """Abstract blocks of `jobs` sliced from the GHN outputs `outs` (abstract), asking
    program(name, static, args) -> abstract output for every bucket program a step runs."""
    program("zeros", (), (tuple(outs),))
    srcs = dict(zip(("pix", "rows", "cw", "cb"), outs))
    start, done, blocks = jax.ShapeDtypeStruct((), jnp.int32), {}, []
    for job in jobs:
        k = (job.src, job.n)
        if k not in done:
            block = program("take", _take_static(job), (srcs[job.src], start))
            program("put", (), (srcs[job.src], start, block))
            done[k] = block
        blocks.append(done[k])
    return blocks


@jax.jit
def _scale(g, s):
    return g * s


# ------------------------------------------------------------------------------------------
# The meta-batch step
# ------------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Job:
    a: _Assign
    src: str                  # 'pix' | 'rows' | 'cw' | 'cb'
    start: int
    n: int
    paths: Tuple[str, ...]    # Flax paths written (weight[, bias])
    net: int


class MetaStep:
    """Loss and GHN gradients of one meta-batch of architectures on one image batch."""

    def __init__(self, module: GHN3, label_smoothing: float = 0.1, lam: float = 3e-5, mesh=None,
                 ghn_dtype: str = "float32"):
        """mesh: None (one device), or the jax Mesh the GHN parameters and the (batch-sharded)
        images live on; the GHN's graph inputs are then replicated over it.
        ghn_dtype: 'bfloat16' runs the GHN's forward and backward in bf16 (float32 master
        parameters and outputs); the target networks always run in float32."""
        if ghn_dtype not in ("float32", "bfloat16"):
            raise GhnError(f"ghn_dtype must be 'float32' or 'bfloat16', not {ghn_dtype!r}")
        self.module, self.label_smoothing, self.lam, self.mesh = module, label_smoothing, lam, mesh
        self.ghn_dtype = ghn_dtype
        self.executor = Executor()

    # -- host-side planning (numpy) ------------------------------------------------------
    def _inputs(self, graphs: Sequence[ArchGraph]):
        co, ci, s, _ = self.module.max_shape
        conv_nodes, pixels, one_d, jobs = [], [], [], []     # pixels: (slot, row, col) arrays per conv node
        n_pix = 0
        last_w, last_b = [], []                              # nodes as (graph, node) until the padding is known
        all_tasks = []
        for gi, g in enumerate(graphs):
            tasks = assign.plan(g, self.module.max_shape, centre=True)
            all_tasks += tasks
            abstract = g.abstract_variables
            for t in tasks:
                name = g.param_names[t.node]
                leaf = tuple(tree_paths.get(abstract, name).shape)
                is_kernel = name.endswith("/kernel")
                if t.kind == "conv":
                    (r0, r1), (c0, c1) = t.window
                    hw = (r1 - r0, c1 - c0)
                    start = n_pix
                    rows, cols = np.meshgrid(np.arange(r0, r1), np.arange(c0, c1), indexing="ij")
                    pixels.append((np.full(rows.size, len(conv_nodes)), rows.ravel(), cols.ravel()))
                    n_pix += rows.size
                    conv_nodes.append((gi, t.node))
                    keep = (min(t.key_out, t.target[0]), min(t.key_in, t.target[1]))
                    a = _Assign("conv", t.target, leaf, is_kernel, hw, keep, s)
                    jobs.append(_Job(a, "pix", start, hw[0] * hw[1], (_param_path(name),), gi))
                elif t.kind == "class":
                    a = _Assign("class", t.target, leaf, is_kernel, keep=(t.target[0], min(t.key_in, t.target[1])))
                    jobs.append(_Job(a, "cw", gi, 1, (_param_path(name),), gi))
                    last_w.append((gi, t.node))
                elif t.kind == "class_bias":
                    jobs.append(_Job(_Assign("class_bias", t.target, leaf, False), "cb", gi, 1,
                                     (_param_path(name),), gi))
                    last_b.append((gi, t.node))
                else:
                    extras = g.extra_params[t.node]
                    bias_leaf = tuple(tree_paths.get(abstract, extras[0]).shape) if extras else ()
                    a = _Assign("1d", t.target, leaf, False, row=t.row, norm_weight=t.norm_weight,
                                bias_leaf=bias_leaf)
                    jobs.append(_Job(a, "rows", len(one_d), 1,
                                     tuple(_param_path(p) for p in (name,) + tuple(extras)), gi))
                    one_d.append((gi, t.node))
            if g.not_predicted:
                raise GhnError(f"{g.name}: parameters without a GHN node cannot be trained through the "
                               f"GHN: {g.not_predicted}")
        if len(last_w) != len(graphs) or len(last_b) != len(graphs):
            raise GhnError("every network of a meta-batch needs a classifier weight and bias node")
        m, size, n_conv, n_1d = self._padding(max(g.n_nodes for g in graphs), n_pix, len(conv_nodes), len(one_d),
                                              len(graphs))
        batch = pad_graphs(graphs, num_nodes=m)
        si = shape_indices(batch.node_types, batch.shapes, self.module.num_classes, s)
        flat = lambda nodes: [gi * m + k for gi, k in nodes]
        slot, rr, cc = (pad_ints(np.concatenate([p[k] for p in pixels]) if pixels else [], size) for k in range(3))
        inputs = (batch.node_types, si, batch.spd.astype(np.int32), batch.mask,
                  pad_ints(flat(conv_nodes), n_conv), slot, rr, cc,
                  pad_ints(flat(one_d), n_1d), np.asarray(flat(last_w), np.int32),
                  np.asarray(flat(last_b), np.int32))
        if self.mesh is not None:
            rep = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
            inputs = tuple(put_global(a, rep) for a in inputs)
        return inputs, jobs, assign.pixel_box(all_tasks, s, centre=True)

    @staticmethod
    def _padding(nodes: int, pixels: int, conv: int, one_d: int, n_graphs: int) -> Tuple[int, int, int, int]:
        """Padded sizes of (nodes per graph, window pixels, conv nodes, 1-D nodes).

        Every new size combination compiles the whole GHN forward and backward (~3 s for
        GHN-3-T), so the combinations are kept few. Window pixels and conv nodes go to powers
        of two (not the finer node ladder): the decoders' work is per pixel and per conv node
        over the window box. The 1-D nodes, a small MLP's rows, are padded to all of the
        meta-batch's nodes, so they add no combinations (+~5% on the program). Over 800
        meta-batches of 2 fresh 32-px networks: 58 GHN programs, 8 of them new in the last
        400 (86 and 14 with a power of two for the 1-D nodes too). A function of the
        meta-batch alone, so that a restarted run pads (and rounds) exactly as before."""
        m = bucket_size(nodes)
        return m, pow2(max(1, pixels)), pow2(max(1, conv)), max(one_d, n_graphs * m)

    # -- the step --------------------------------------------------------------------------
    def prepare(self, graphs: Sequence[ArchGraph]):
        """(inputs, jobs, box): host-side (numpy) inputs of the GHN program, the assignment jobs
        and the decoder-map window the program evaluates (static); can run in a data-loading
        thread."""
        return self._inputs(graphs)

    def predict(self, ghn_params, graphs: Sequence[ArchGraph], prepared=None):
        """Per net {module name: Raw(builder, blocks)} (parameters are built inside the op
        kernels), plus what `backward` needs."""
        inputs, jobs, box = prepared if prepared is not None else self._inputs(graphs)
        fwd, bwd, _ = self.ghn_programs(ghn_params, inputs, box)
        outs, ghn_vjp = fwd(ghn_params, *inputs)
        srcs = dict(zip(("pix", "rows", "cw", "cb"), outs))
        run = _step_programs()
        blocks = [pacing.step(run((j.src, j.n), "take", _take_static(j), srcs[j.src], np.int32(j.start)))
                  for j in jobs]
        return self._raw(jobs, blocks, len(graphs)), (outs, ghn_vjp, jobs, bwd)

    def ghn_programs(self, ghn_params, inputs, box):
        """Compiled GHN forward / backward for these padded shapes (compiled once, called
        directly: a jit call would re-trace the whole GHN first). inputs and ghn_params may
        be abstract."""
        sig = ("ghn", self.module, self.ghn_dtype, box, signature((ghn_params, inputs)))
        e = _PRECOMPILED.get(sig)
        if e is None:
            fwd, bwd, outs, _ = kernel_store.vjp_programs(
                ("ghn", self.module, self.ghn_dtype, box),
                functools.partial(_ghn_outputs, self.module, self.ghn_dtype, box),
                (_abstract(ghn_params),) + tuple(_abstract(inputs)), compile_options.optimised(), n_diff=1)
            e = _PRECOMPILED[sig] = (fwd, bwd, outs)
        return e

    def _ghn_census(self, census, ghn_params, inputs, box):
        """Abstract GHN outputs, recording the padding bucket in `census` (nothing compiled)."""
        def outputs():
            return jax.eval_shape(functools.partial(_ghn_outputs, self.module, self.ghn_dtype, box),
                                  _abstract(ghn_params), *_abstract(inputs))
        sig = ("ghn", self.ghn_dtype, box, signature((ghn_params, inputs)))
        return census.ghn_bucket(sig, box, tuple(_abstract(inputs)), outputs)

    @staticmethod
    def _raw(jobs, blocks, n_nets):
        grouped: List[Dict[str, List]] = [dict() for _ in range(n_nets)]
        for k, (job, block) in enumerate(zip(jobs, blocks)):
            module = job.paths[0].split("/")[0]
            rel = tuple(p[len(module) + 1:] for p in job.paths)
            grouped[job.net].setdefault(module, []).append((job.a, rel, block, k))
        out, order = [], []
        for g in grouped:
            out.append({m: Raw(_Builder(tuple((a, rel) for a, rel, _, _ in items)), [b for *_, b, _ in items])
                        for m, items in g.items()})
            order.append({m: [k for *_, k in items] for m, items in g.items()})
        return out, order

    def materialise(self, raw_params: Dict[str, Raw]) -> Dict[str, Any]:
        """{module name: params subtree}: the predicted parameters as plain arrays."""
        return {m: jax.jit(r.builder)(r.blocks)[0] for m, r in raw_params.items()}

    def precompile(self, ghn_params, nets: Sequence[MetaNet], prepared, images, labels, dropout_key=None,
                   run_once: bool = False, census=None):
        """Compiles everything `__call__` will run for these nets, from shapes alone.

        Run it one step ahead in a background thread: new architectures then find their
        kernels compiled, and compilation overlaps compute (docs/deepnets.md, "Executor").
        run_once: run the executor's kernels new to this process once on zeros, so that
        their costly first execution happens here, not in the step (`executor.run_once`);
        not for a warm-up that only compiles into the kernel store. (Not the GHN's programs:
        zeros of its parameters would be a copy of them, 2.6 GB for GHN-3-XL, per new
        padding bucket.) Off by default: on the 2-core CPU, where the loader thread already
        sets the pace, 60 stream steps ran at 0.64 steps/s with it and 0.76 without
        (docs/deepnets.md, 2026-12-03); hosts with idle cores may gain from it.
        census: a `census.Census` that records the GHN padding bucket, its bucket programs
        and the executor's kernel signatures instead of compiling them (for filling the
        kernel store; the loss's two small programs, one per image batch shape, are left to
        the step).
        """
        inputs, jobs, box = prepared
        if census is not None:
            outs = self._ghn_census(census, ghn_params, inputs, box)
            blocks = _bucket_walk(jobs, outs, census.bucket_program)
        else:
            outs = self.ghn_programs(ghn_params, inputs, box)[2]
            blocks = _bucket_walk(jobs, outs, lambda name, static, args: bucket_program(name, static, args)[1])
        raw, _ = self._raw(jobs, blocks, len(nets))
        x = _abstract(images)
        key = None if dropout_key is None else _abstract(jax.random.fold_in(dropout_key, 0))
        for net, r in zip(nets, raw):
            logits = self.executor.precompile(net.plan, r, x, key, run_once=run_once, census=census)
        if census is not None:
            return
        sig = ("ce", signature((logits, labels)), self.label_smoothing)
        if sig not in _PRECOMPILED:
            _, (_, g) = compile_abstract(cross_entropy_and_grad, logits, _abstract(labels),
                                         label_smoothing=self.label_smoothing)
            compile_abstract(_scale, g, jax.ShapeDtypeStruct((), jnp.float32))
            _PRECOMPILED[sig] = True

    def __call__(self, ghn_params, nets: Sequence[MetaNet], images, labels, dropout_key=None, prepared=None,
                 first_index: int = 0):
        """{'loss', 'ce' (per net), 'reg', 'grads'} for one meta-batch on one image batch.

        first_index: the position of nets[0] in a larger meta-batch split across processes
        (dropout keys follow the global position)."""
        m = len(nets)
        if self.executor.maybe_evict() == 2:
            _PRECOMPILED.clear()
        (raw, order), saved = self.predict(ghn_params, [n.graph for n in nets], prepared)
        ces, norms, block_cts = [], [], {}
        for i, net in enumerate(nets):
            key = None if dropout_key is None else jax.random.fold_in(dropout_key, first_index + i)
            logits, tape = self.executor.forward(net.plan, raw[i], images, key)
            ce, g_logits = cross_entropy_and_grad(logits, labels, label_smoothing=self.label_smoothing)
            grads, _ = self.executor.backward(tape, _scale(g_logits, np.float32(1.0 / m)), self.lam / m)
            ces.append(ce)
            norms.extend(tape.norms)
            for module, cts in grads.items():
                block_cts.update(zip(order[i][module], cts))
        ghn_grads = self.backward(saved, block_cts)
        ces, norms = jax.device_get((ces, norms))          # one transfer, after all nets ran
        ces = [float(c) for c in ces]
        reg = self.lam * float(np.sum(norms))
        loss = (sum(ces) + reg) / m
        return {"loss": loss, "ce": ces, "reg": reg, "grads": ghn_grads}

    def backward(self, saved, block_cts: Dict[int, Any]):
        """GHN parameter gradients from the cotangents of the raw blocks (by job index)."""
        outs, ghn_vjp, jobs, bwd = saved
        run = _step_programs()
        cts = dict(zip(("pix", "rows", "cw", "cb"), run("zeros", "zeros", (), tuple(outs))))
        for k, job in enumerate(jobs):
            if k in block_cts:
                buf, g = cts[job.src], block_cts[k]
                cts[job.src] = pacing.step(run((job.src, job.n, buf.sharding, g.sharding, g.dtype), "put", (), buf,
                                               np.int32(job.start), g))
        return bwd(ghn_vjp, tuple(cts[k] for k in ("pix", "rows", "cw", "cb")))[0]


@dataclasses.dataclass(frozen=True)
class _Builder:
    """Raw blocks of one op -> its params subtree and the sum of their norms (see executor.Raw)."""
    items: Tuple[Tuple[_Assign, Tuple[str, ...]], ...]

    def __call__(self, blocks):
        flat, norm = {}, jnp.zeros((), jnp.float32)
        for (a, rel), block in zip(self.items, blocks):
            leaves, n = _assign_fn(a, block)
            flat.update(zip(rel, leaves))
            norm = norm + n.astype(jnp.float32)
        return tree_paths.unflatten(flat), norm


def _param_path(path: str) -> str:
    """Graph paths start with the collection ('params/...'); executor params do not."""
    return path[len("params/"):] if path.startswith("params/") else path
