"""Graph extraction by tracing a Flax model: module + input shape -> GHN-3 computational graph.

The model's `init` is traced once with `jax.make_jaxpr` (nothing is computed) while
`nn.intercept_methods` tags the inputs and outputs of every parameterised *leaf* layer
(nn.Conv, nn.Dense, nn.BatchNorm, ...) with an identity primitive. One linear pass over
the jaxpr then follows which graph node each value comes from ("sources") and applies
the rules of the reference graph (design/ghn3-reference.md §1.3):

* a layer with parameters is the chain `input -> weight -> bias -> consumers`;
  batch/layer norms are one node; its internals are hidden;
* `add` of >= 2 distinct graph values is a `sum` node, `concatenate` a `concat` node,
  anything else with one graph input is transparent (activations, reshapes, dropout...);
* `reduce_window` max/sum are pooling nodes with their kernel, a mean over the spatial
  (or token) axes is `glob_avg`;
* an explicit softmax is the attention core `msa` (the value path joins it); a fused
  `scaled_dot_product_attention` has none, like torch's fused SDPA in the reference;
* a product of two distinct graph values is a squeeze-excitation `cse` node, kept only
  in networks with sigmoid-type gates, whose SE means are then dropped (reference rule);
* a free parameter added to the token stream through layout ops only is a `pos_enc`
  source feeding a `sum`; other free parameters (class token, layer scale, relative
  position tables) are reported as not predicted;
* the main output must come from a classifier (Dense / 1x1 conv), whose weight and bias
  become the last two nodes; a global average pool after a 1x1-conv classifier commutes
  with it and is placed before it, as in the reference.
"""
import dataclasses
import contextlib
import inspect
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
import jax
import jax.numpy as jnp
import flax.linen as nn
from flax.core import scope as flax_scope
from jax.extend.core import Primitive, ClosedJaxpr, Jaxpr, Literal

from ghn_jax import tree_paths
from ghn_jax.errors import NotAClassifierError, UnsupportedOpError
from ghn_jax.export.torch_params import _KERNEL_TO_TORCH

# ------------------------------------------------------------------------------------------
# Leaf tagging
# ------------------------------------------------------------------------------------------

_tag_p = Primitive("ghn_tag")
_tag_p.def_impl(lambda x, **_: x)
_tag_p.def_abstract_eval(lambda x, **_: x)

# Parameterised layers a GHN represents, and layers with parameters it cannot represent.
_NORM_TYPES = (nn.BatchNorm, nn.LayerNorm)
_UNSUPPORTED_LEAVES = tuple(t for t in (
    getattr(nn, n, None) for n in ("GroupNorm", "RMSNorm", "InstanceNorm", "ConvTranspose",
                                   "ConvLocal", "Einsum", "SpectralNorm", "WeightNorm",
                                   "LSTMCell", "OptimizedLSTMCell", "GRUCell", "SimpleCell",
                                   "MGUCell", "ConvLSTMCell")) if t is not None)
_LEAF_TYPES = (nn.Conv, nn.Dense, nn.DenseGeneral, nn.Embed) + _NORM_TYPES + _UNSUPPORTED_LEAVES

# Named jitted functions recognised by name (jax.nn defines these with @jax.jit).
_FUSED_ATTENTION = {"scaled_dot_product_attention", "dot_product_attention"}
_GATES = {"sigmoid", "hard_sigmoid", "hard_silu", "hard_swish"}
_OPAQUE_ACTIVATIONS = {"silu", "swish", "gelu", "relu", "relu6", "elu", "selu", "celu",
                       "leaky_relu", "softplus", "mish", "tanh", "log_sigmoid", "glu"}
_CONTROL_FLOW = {"scan", "while", "cond", "switch"}
# Ops that only move or relabel values: a free parameter passing through them is unchanged.
_LAYOUT_OPS = {"reshape", "broadcast_in_dim", "transpose", "convert_element_type", "squeeze",
               "expand_dims", "copy", "copy_p", "slice", "rev"}


@dataclasses.dataclass
class _Leaf:
    path: Tuple[str, ...]
    module_type: str
    nodes: List[int]                      # chain: weight [, bias]; or the single norm node
    called: bool = False


@dataclasses.dataclass
class TracedNode:
    """One node of the traced graph, before ordering."""
    prim: str
    shape: Optional[Tuple[int, ...]] = None        # torch layout (param) or (1,1,kh,kw) (pool)
    param: Optional[Tuple[str, ...]] = None        # ('params', module..., leaf) it predicts
    extra_params: Tuple[Tuple[str, ...], ...] = ()  # norm bias predicted from the same node
    module: Tuple[str, ...] = ()                    # module path of the layer or op
    op: str = ""                                    # Flax layer type or jaxpr primitive


@dataclasses.dataclass
class TraceResult:
    nodes: List[TracedNode]                       # includes dropped nodes (see `live`)
    edges: Set[Tuple[int, int]]                   # between live nodes only
    live: List[int]                               # node ids that are in the graph
    output_node: int                              # last node of the main classifier
    abstract_variables: Any                       # pytree of ShapeDtypeStruct
    input_shape: Tuple[int, ...]
    initialisers: Dict[Tuple[str, ...], Any] = dataclasses.field(default_factory=dict)


class _Tracer:
    def __init__(self):
        self.nodes: List[TracedNode] = []
        self.edges: Set[Tuple[int, int]] = set()
        self.preds: Dict[int, Set[int]] = {}
        self.anc: List[int] = []                  # ancestor bitmask per node
        self.leaves: List[_Leaf] = []
        self.leaf_by_path: Dict[Tuple[str, ...], int] = {}
        self.has_gate = False
        self.pos_enc_of: Dict[Tuple[str, ...], int] = {}
        self.cse_nodes: List[int] = []
        self.glob_avg_nodes: List[int] = []
        self.msa_nodes: Set[int] = set()
        self.dropped: Set[int] = set()

    # -- graph building ------------------------------------------------------------------
    def add_node(self, node: TracedNode) -> int:
        self.nodes.append(node)
        self.anc.append(0)
        self.preds[len(self.nodes) - 1] = set()
        return len(self.nodes) - 1

    def add_edge(self, u: int, v: int):
        if u == v or (u, v) in self.edges:
            return
        self.edges.add((u, v))
        self.preds[v].add(u)
        self.anc[v] |= self.anc[u] | (1 << u)

    def op_node(self, prim: str, srcs, op: str, shape=None) -> int:
        n = self.add_node(TracedNode(prim, shape=shape, op=op))
        for s in sorted(srcs):
            self.add_edge(s, n)
        return n

    def is_ancestor(self, u: int, v: int) -> bool:
        return bool(self.anc[v] >> u & 1)

    def recompute_ancestors(self):
        """Exact ancestor sets (edges added out of data-flow order, e.g. by a layer called
        twice, would leave the incremental sets stale)."""
        succ: Dict[int, List[int]] = {i: [] for i in range(len(self.nodes))}
        indeg = {i: len(p) for i, p in self.preds.items()}
        for u, v in self.edges:
            succ[u].append(v)
        anc = [0] * len(self.nodes)
        ready = [i for i, d in indeg.items() if d == 0]
        while ready:
            u = ready.pop()
            for v in succ[u]:
                anc[v] |= anc[u] | (1 << u)
                indeg[v] -= 1
                if indeg[v] == 0:
                    ready.append(v)
        self.anc = anc

    def prune_ancestors(self, srcs: frozenset) -> frozenset:
        if len(srcs) < 2:
            return srcs
        return frozenset(s for s in srcs if not any(self.is_ancestor(s, t) for t in srcs if t != s))


# ------------------------------------------------------------------------------------------
# Interception of leaf layers
# ------------------------------------------------------------------------------------------

def _leaf_nodes(module: nn.Module, params: Dict[str, Any], path: Tuple[str, ...]) -> List[TracedNode]:
    """The node chain a leaf layer contributes (torch layout shapes)."""
    mtype = type(module).__name__
    if isinstance(module, _UNSUPPORTED_LEAVES):
        raise UnsupportedOpError(
            f"layer '{'/'.join(path) or '<root>'}' is a {mtype}, which a GHN cannot represent "
            f"(supported layers: Conv (2-D), Dense, BatchNorm, LayerNorm, Embed)")

    def pshape(leaf):
        shape = tuple(params[leaf].shape)
        if leaf == "kernel" and len(shape) in _KERNEL_TO_TORCH:
            return tuple(shape[i] for i in _KERNEL_TO_TORCH[len(shape)])
        return shape

    if isinstance(module, nn.Conv):
        if len(module.kernel_size) != 2:
            raise UnsupportedOpError(
                f"layer '{'/'.join(path)}' is a {len(module.kernel_size)}-D convolution; "
                f"a GHN represents 2-D convolutions only")
        groups = module.feature_group_count
        dil = module.kernel_dilation or 1
        dil = (dil, dil) if isinstance(dil, int) else tuple(dil)
        prim = ("dil_conv" if min(dil) > 1 else "sep_conv") if groups > 1 else "conv"
        chain = [TracedNode(prim, pshape("kernel"), ("params",) + path + ("kernel",), module=path, op=mtype)]
    elif isinstance(module, (nn.Dense, nn.DenseGeneral)):
        k = params["kernel"]
        if isinstance(module, nn.DenseGeneral):
            n_out = int(np.prod(np.atleast_1d(module.features)))
            shape = (n_out, int(np.prod(k.shape)) // n_out)
        else:
            shape = pshape("kernel")
        chain = [TracedNode("conv", shape, ("params",) + path + ("kernel",), module=path, op=mtype)]
    elif isinstance(module, _NORM_TYPES):
        if "scale" not in params:
            return []  # affine-free norm: nothing to predict, transparent
        extra = (("params",) + path + ("bias",),) if "bias" in params else ()
        prim = "bn" if isinstance(module, nn.BatchNorm) else "ln"
        return [TracedNode(prim, tuple(params["scale"].shape), ("params",) + path + ("scale",),
                           extra, module=path, op=mtype)]
    elif isinstance(module, nn.Embed):
        return [TracedNode("pos_enc", tuple(params["embedding"].shape),
                           ("params",) + path + ("embedding",), module=path, op=mtype)]
    else:  # pragma: no cover - _LEAF_TYPES and this function must agree
        raise AssertionError(mtype)
    if "bias" in params:
        chain.append(TracedNode("bias", tuple(params["bias"].shape), ("params",) + path + ("bias",),
                                module=path, op=mtype))
    return chain


def _with_running_average(module: nn.BatchNorm, next_fun, args, kwargs):
    if module.use_running_average is None:            # given at call time
        if len(args) > 1:
            args = (args[0], True) + tuple(args[2:])
        else:
            kwargs = dict(kwargs, use_running_average=True)
        return next_fun(*args, **kwargs)
    saved = module.use_running_average                # a constructor field (frozen dataclass)
    object.__setattr__(module, "use_running_average", True)
    try:
        return next_fun(*args, **kwargs)
    finally:
        object.__setattr__(module, "use_running_average", saved)


def _make_interceptor(tr: _Tracer):
    def interceptor(next_fun, args, kwargs, context):
        module = context.module
        if context.method_name != "__call__" or not isinstance(module, _LEAF_TYPES):
            return next_fun(*args, **kwargs)
        path = tuple(module.path)
        if isinstance(module, _UNSUPPORTED_LEAVES):
            _leaf_nodes(module, {}, path)  # raises with the layer's path
        lid = tr.leaf_by_path.get(path)
        if lid is None:
            lid = len(tr.leaves)
            tr.leaf_by_path[path] = lid
            tr.leaves.append(_Leaf(path, type(module).__name__, []))
        args = tuple(_tag_p.bind(a, leaf=lid, io="in") if isinstance(a, jax.Array) else a
                     for a in args)
        if isinstance(module, nn.BatchNorm) and module.use_running_average is not True:
            # A layer's internals are hidden from the graph (see _Walker.tag), and batch
            # statistics are about half of a BatchNorm network's trace: running averages
            # create the same variables and output shape with far fewer ops.
            out = _with_running_average(module, next_fun, args, kwargs)
        else:
            out = next_fun(*args, **kwargs)
        leaf = tr.leaves[lid]
        if not leaf.called:
            leaf.called = True
            params = dict(module.variables.get("params", {}))
            leaf.nodes = [tr.add_node(n) for n in _leaf_nodes(module, params, path)]
        return jax.tree_util.tree_map(
            lambda o: _tag_p.bind(o, leaf=lid, io="out") if isinstance(o, jax.Array) else o, out)
    return interceptor


# ------------------------------------------------------------------------------------------
# The jaxpr pass
# ------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _FreeParam:
    path: Tuple[str, ...]
    layout_only: bool          # reached here through layout ops only
    shape: Tuple[int, ...]     # the parameter's own shape


class _Walker:
    def __init__(self, tr: _Tracer, leaf_offset: int = 0):
        self.tr = tr
        self.leaf_offset = leaf_offset             # a replayed fragment's first leaf id (fragments.py)
        self.src: Dict[Any, frozenset] = {}
        self.free: Dict[Any, _FreeParam] = {}
        self.producer: Dict[Any, Any] = {}
        self.softmax_exp: Set[Any] = set()
        self.pending_in: Dict[int, Set[int]] = {}   # leaf id -> graph sources of its inputs

    def S(self, v) -> frozenset:
        if isinstance(v, Literal):
            return frozenset()
        return self.src.get(v, frozenset())

    def F(self, v) -> Optional[_FreeParam]:
        if isinstance(v, Literal):
            return None
        return self.free.get(v)

    # -- entry ----------------------------------------------------------------------------
    def walk(self, jaxpr: Jaxpr):
        for eqn in jaxpr.eqns:
            for o in eqn.outvars:
                self.producer[o] = eqn
            self.eqn(eqn)

    def eqn(self, eqn):
        tr = self.tr
        name = eqn.primitive.name
        ins = [self.S(v) for v in eqn.invars]
        graph_ins = [s for s in ins if s]
        union = frozenset().union(*graph_ins) if graph_ins else frozenset()

        if name == "ghn_tag":
            self.tag(eqn, ins[0])
            return
        sub = _sub_jaxpr(eqn)
        if sub is not None:
            self.call(eqn, sub, ins, union)
            return
        if name in _CONTROL_FLOW and union:
            raise UnsupportedOpError(
                f"control flow '{name}' over the model's activations{_where(eqn)}: a GHN graph "
                f"needs every layer call unrolled (no lax.scan / nn.scan / while / cond)")

        free_ins = [self.F(v) for v in eqn.invars]
        out_src = union
        if name == "logistic":
            tr.has_gate = True
        elif name in ("add", "add_any"):
            out_src = self.add(eqn, ins, free_ins, union)
        elif name == "concatenate":
            out_src = self.concat(ins, union)
        elif name == "mul":
            if len(graph_ins) == 2 and len(union) >= 2 and graph_ins[0] != graph_ins[1]:
                n = tr.op_node("cse", union, name)
                tr.cse_nodes.append(n)
                out_src = frozenset({n})
        elif name in ("dot_general", "conv_general_dilated"):
            out_src = self.contraction(eqn, ins, free_ins, union)
        elif name in ("reduce_window_max", "reduce_window_sum") and union:
            out_src = self.pool(eqn, union)
        elif name == "reduce_sum" and union:
            v = eqn.invars[0]
            nd = len(v.aval.shape)
            axes = tuple(eqn.params["axes"])
            if v in self.softmax_exp:
                pass
            elif nd >= 3 and axes and all(1 <= a <= nd - 2 for a in axes):
                n = tr.op_node("glob_avg", union, name)
                tr.glob_avg_nodes.append(n)
                out_src = frozenset({n})
        elif name == "exp" and union and self.is_softmax_exp(eqn):
            n = tr.op_node("msa", union, "softmax")
            tr.msa_nodes.add(n)
            out_src = frozenset({n})
            self.softmax_exp.add(eqn.outvars[0])

        for o in eqn.outvars:
            if out_src:
                self.src[o] = out_src
        self.propagate_free(eqn, free_ins, union)

    # -- rules ----------------------------------------------------------------------------
    def tag(self, eqn, s):
        tr = self.tr
        lid, io = eqn.params["leaf"] + self.leaf_offset, eqn.params["io"]
        out = eqn.outvars[0]
        if io == "in":
            self.pending_in.setdefault(lid, set()).update(s)
            return  # inside the layer nothing is a graph value: its internals are hidden
        leaf = tr.leaves[lid]
        ins = self.pending_in.pop(lid, set())
        if not leaf.nodes:          # affine-free norm: transparent
            if ins:
                self.src[out] = frozenset(ins)
            return
        for u in sorted(ins):
            tr.add_edge(u, leaf.nodes[0])
        # The chain's own edges come after its inputs, so ancestor sets propagate in data-flow order.
        for a, b in zip(leaf.nodes, leaf.nodes[1:]):
            tr.add_edge(a, b)
        self.src[out] = frozenset({leaf.nodes[-1]})

    def call(self, eqn, sub: ClosedJaxpr, ins, union):
        name = eqn.params.get("name", "")
        if name in _FUSED_ATTENTION or name in _OPAQUE_ACTIVATIONS or name in _GATES:
            if name in _GATES:
                self.tr.has_gate = True
            pruned = self.tr.prune_ancestors(union)
            for o in eqn.outvars:
                if pruned:
                    self.src[o] = pruned
            return
        inner = sub.jaxpr
        n_in = len(inner.invars)
        outer_in = list(eqn.invars)[-n_in:] if n_in <= len(eqn.invars) else list(eqn.invars)
        for iv, ov in zip(inner.invars, outer_in):
            s, f = self.S(ov), self.F(ov)
            if s:
                self.src[iv] = s
            if f is not None:
                self.free[iv] = f
            if not isinstance(ov, Literal) and ov in self.softmax_exp:
                self.softmax_exp.add(iv)
        self.walk(inner)
        for iv, ov in zip(inner.outvars, eqn.outvars):
            s, f = self.S(iv), self.F(iv)
            if s:
                self.src[ov] = s
            if f is not None:
                self.free[ov] = f

    def add(self, eqn, ins, free_ins, union):
        tr = self.tr
        srcs = set(union)
        for f, s in zip(free_ins, ins):
            if f is not None and not s and union and f.layout_only and _is_pos_embedding(f, eqn):
                n = tr.pos_enc_of.get(f.path)
                if n is None:  # its shape is read from the variables after the walk
                    n = tr.add_node(TracedNode("pos_enc", None, f.path, module=f.path[1:-1], op="param"))
                    tr.pos_enc_of[f.path] = n
                srcs.add(n)
        graph_operands = sum(1 for s in ins if s) + (len(srcs) - len(union))
        if graph_operands >= 2 and len(srcs) >= 2:
            return frozenset({tr.op_node("sum", srcs, "add")})
        return frozenset(srcs)

    def concat(self, ins, union):
        if len([s for s in ins if s]) >= 2 and len(union) >= 2:
            return frozenset({self.tr.op_node("concat", union, "concatenate")})
        return union

    def contraction(self, eqn, ins, free_ins, union):
        tr = self.tr
        if not union:
            return union
        f = next((f for f, s in zip(free_ins, ins) if f is not None and not s), None)
        if f is not None:
            raise UnsupportedOpError(
                f"parameter '{'/'.join(f.path[1:])}' is used by '{eqn.primitive.name}' outside a "
                f"Dense/Conv layer{_where(eqn)}; a GHN predicts parameters of nn.Dense / nn.Conv "
                f"layers only")
        if eqn.primitive.name == "conv_general_dilated" and len(eqn.invars[0].aval.shape) != 4:
            raise UnsupportedOpError(
                f"{len(eqn.invars[0].aval.shape) - 2}-D convolution{_where(eqn)}: a GHN represents "
                f"2-D convolutions only")
        msa = [m for m in union if m in tr.msa_nodes]
        if msa and len([s for s in ins if s]) == 2:
            m = max(msa)
            for s in union:
                if s != m and not tr.is_ancestor(s, m):
                    tr.add_edge(s, m)     # the value path joins the attention core
            return frozenset({m})
        return tr.prune_ancestors(union)

    def pool(self, eqn, union):
        wd = tuple(eqn.params["window_dimensions"])
        if len(wd) != 4 or wd[0] != 1 or wd[3] != 1:
            raise UnsupportedOpError(
                f"pooling window {wd}{_where(eqn)}: a GHN represents 2-D spatial pooling of NHWC "
                f"tensors only")
        prim = "max_pool" if eqn.primitive.name == "reduce_window_max" else "avg_pool"
        return frozenset({self.tr.op_node(prim, union, eqn.primitive.name, (1, 1, wd[1], wd[2]))})

    def is_softmax_exp(self, eqn) -> bool:
        # softmax = exp(x - stop_gradient(max(x))) / sum(...): look for the stabiliser.
        p = self.producer.get(eqn.invars[0])
        if p is None or p.primitive.name != "sub":
            return False
        v, hops = p.invars[1], 0
        while hops < 6 and not isinstance(v, Literal):
            q = self.producer.get(v)
            if q is None:
                return False
            if q.primitive.name == "stop_gradient":
                return True
            if q.primitive.name not in _LAYOUT_OPS and q.primitive.name not in ("reduce_max", "max"):
                return False
            v, hops = q.invars[0] if q.primitive.name != "max" else q.invars[-1], hops + 1
        return False

    def propagate_free(self, eqn, free_ins, union):
        if union:
            return
        fs = [f for f in free_ins if f is not None]
        if len(fs) != 1:
            return
        f = fs[0]
        layout = eqn.primitive.name in _LAYOUT_OPS
        for o in eqn.outvars:
            self.free[o] = _FreeParam(f.path, f.layout_only and layout, f.shape)


def _is_pos_embedding(f: _FreeParam, eqn) -> bool:
    """A positional embedding is a (1, T, C) or (1, H, W, C) table added to the activations."""
    return len(f.shape) in (3, 4) and f.shape[0] == 1 and min(f.shape[1:]) > 1


def _sub_jaxpr(eqn) -> Optional[ClosedJaxpr]:
    name = eqn.primitive.name
    if name in _CONTROL_FLOW:
        return None
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        j = eqn.params.get(key)
        if isinstance(j, ClosedJaxpr):
            return j
        if isinstance(j, Jaxpr):
            return ClosedJaxpr(j, ())
    return None


def _where(eqn) -> str:
    ns = str(eqn.source_info.name_stack)
    return f" in '{ns}'" if ns else ""


# ------------------------------------------------------------------------------------------
# Post-processing
# ------------------------------------------------------------------------------------------

def _remove_nodes(tr: _Tracer, drop: Set[int]):
    """Deletes nodes, bridging every predecessor to every successor."""
    if not drop:
        return
    succ: Dict[int, Set[int]] = {i: set() for i in range(len(tr.nodes))}
    for u, v in tr.edges:
        succ[u].add(v)
    preds = {i: set(p) for i, p in tr.preds.items()}
    for n in sorted(drop):
        for p in preds[n]:
            succ[p].discard(n)
        for s in succ[n]:
            preds[s].discard(n)
        for p in preds[n]:
            for s in succ[n]:
                if p != s:
                    succ[p].add(s)
                    preds[s].add(p)
        preds[n], succ[n] = set(), set()
    tr.edges = {(u, v) for u in succ for v in succ[u]}
    tr.preds = preds
    tr.dropped |= drop


def _finalise(tr: _Tracer, out_srcs: List[frozenset], input_node: int) -> int:
    tr.recompute_ancestors()
    drop: Set[int] = set()
    if tr.has_gate:
        # An SE block's mean feeds the gate of its own cse node: drop it (reference rule).
        for c in tr.cse_nodes:
            p = tr.preds[c]
            for g in tr.glob_avg_nodes:
                if tr.is_ancestor(g, c) and tr.preds[g] and tr.preds[g] <= p:
                    drop.add(g)
    else:
        drop.update(tr.cse_nodes)  # without sigmoid-type gates products are transparent
    _remove_nodes(tr, drop)

    # Merges left with one input after the removals vanish too.
    while True:
        lone = {n for n in range(len(tr.nodes)) if n not in tr.dropped
                and tr.nodes[n].prim in ("sum", "concat") and len(tr.preds[n]) <= 1}
        if not lone:
            break
        _remove_nodes(tr, lone)

    if not out_srcs or len(out_srcs[0]) != 1:
        raise NotAClassifierError(
            "the model's output does not come from a single layer; a GHN needs a classifier "
            "(nn.Dense or 1x1 nn.Conv) as the last layer")
    out = next(iter(out_srcs[0]))
    node = tr.nodes[out]
    if node.prim == "glob_avg":
        out = _commute_pool_before_classifier(tr, out)
        node = tr.nodes[out]
    if node.prim == "bias":
        w = next((p for p in tr.preds[out] if tr.nodes[p].module == node.module), None)
    else:
        w = out
    ok = w is not None and tr.nodes[w].prim == "conv" and (
        tr.nodes[w].op in ("Dense", "DenseGeneral") or
        (tr.nodes[w].shape is not None and len(tr.nodes[w].shape) == 4 and tr.nodes[w].shape[2:] == (1, 1)))
    if not ok:
        what = f"a '{node.prim}' node" + (f" ({'/'.join(node.module)})" if node.module else "")
        raise NotAClassifierError(
            f"the model's output comes from {what}, not from a classifier layer; a GHN needs the "
            f"last layer to be nn.Dense (or a 1x1 nn.Conv), as in an image classifier")
    return out


def _commute_pool_before_classifier(tr: _Tracer, g: int) -> int:
    """`... -> W -> b -> glob_avg` (a 1x1-conv classifier) becomes `... -> glob_avg -> W -> b`."""
    preds = tr.preds[g]
    if len(preds) != 1:
        return g
    b = next(iter(preds))
    chain = [b]
    if tr.nodes[b].prim == "bias":
        w = next((p for p in tr.preds[b] if tr.nodes[p].module == tr.nodes[b].module), None)
        if w is None:
            return g
        chain = [w, b]
    w = chain[0]
    if tr.nodes[w].prim != "conv":
        return g
    outside = tr.preds[w]
    drop_edges = {(u, w) for u in outside} | {(b, g)}
    tr.edges -= drop_edges
    for u in outside:
        tr.edges.add((u, g))
    tr.edges.add((g, w))
    tr.preds[w] = {g}
    tr.preds[g] = set(outside)
    return chain[-1]


# ------------------------------------------------------------------------------------------
# Public entry
# ------------------------------------------------------------------------------------------

def record_initialisers(model: nn.Module, input_shape: Sequence[int], train: bool = False,
                        call_kwargs: Optional[Dict[str, Any]] = None) -> Dict[Tuple[str, ...], Any]:
    """{('params', *path): (init_fn, args, kwargs)} of every parameter, by one abstract trace."""
    record: Dict[Tuple[str, ...], Any] = {}
    kwargs = dict(_call_kwargs(model, train)) if call_kwargs is None else dict(call_kwargs)

    def init_fn(key, x):
        with zero_initialisers(record):
            return model.init({"params": key, "dropout": key}, x, **kwargs)
    jax.eval_shape(init_fn, jax.ShapeDtypeStruct((2,), jnp.uint32),
                   jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32))
    return record


def _call_kwargs(model: nn.Module, train: bool) -> Dict[str, Any]:
    try:
        params = inspect.signature(type(model).__call__).parameters
    except (TypeError, ValueError):
        return {}
    if "train" in params:
        return {"train": train}
    if "training" in params:
        return {"training": train}
    if "deterministic" in params:
        return {"deterministic": not train}
    return {}


_ORIGINAL_PARAM = flax_scope.Scope.param
_ZERO = threading.local()          # .state: (record,) of this thread's innermost context; absent: none
_ZERO_LOCK = threading.Lock()
_ZERO_USERS = [0]


def _zero_param(self, name, init_fn, *init_args, unbox=True, **init_kwargs):
    state = getattr(_ZERO, "state", None)
    if state is None:                 # another thread's context is active, not this one's
        return _ORIGINAL_PARAM(self, name, init_fn, *init_args, unbox=unbox, **init_kwargs)
    record = state[0]
    if record is not None:
        record[("params",) + tuple(self.path) + (name,)] = (init_fn, init_args, init_kwargs)
    shape = init_args[0] if init_args else None
    if isinstance(shape, int):
        shape = (shape,)
    if isinstance(shape, (tuple, list)) and all(isinstance(d, (int, np.integer)) for d in shape) \
            and not init_kwargs and len(init_args) <= 2:
        dtype = init_args[1] if len(init_args) == 2 and init_args[1] is not None else jnp.float32
        if not self.has_variable("params", name) and self.is_mutable_collection("params"):
            # Created directly: Flax would first derive an rng for it (a traced fold_in of
            # threefry per parameter, ~15% of a graph trace) that zeros do not use.
            self.reserve(name, "params")
            value = jnp.zeros(tuple(shape), dtype)
            self.put_variable("params", name, value)
            return value
        init_fn = lambda rng, *_: jnp.zeros(tuple(shape), dtype)
    return _ORIGINAL_PARAM(self, name, init_fn, *init_args, unbox=unbox, **init_kwargs)


@contextlib.contextmanager
def zero_initialisers(record: Optional[Dict[Tuple[str, ...], Any]] = None):
    """Parameters are created as zeros while tracing: the graph needs their shapes only,
    and tracing every random initialiser is about 40% of a cold trace; in `apply`, Flax's
    check of an existing parameter's shape traces its initialiser too. Applies to
    initialisers called as init(rng, shape[, dtype]) (all Flax layers); others run as is.
    `record` receives {('params', *path): (init_fn, args, kwargs)}: the model's own
    initialisers, for parameters a GHN does not predict.

    Per thread: Flax's `Scope.param` is patched while any thread is inside a context, and
    the patch acts only for those threads, so a data-loading thread that traces graphs
    leaves another thread's real initialisation alone."""
    with _ZERO_LOCK:
        if _ZERO_USERS[0] == 0:
            flax_scope.Scope.param = _zero_param
        _ZERO_USERS[0] += 1
    outer = getattr(_ZERO, "state", None)
    _ZERO.state = (record,)
    try:
        yield
    finally:
        _ZERO.state = outer
        with _ZERO_LOCK:
            _ZERO_USERS[0] -= 1
            if _ZERO_USERS[0] == 0:
                flax_scope.Scope.param = _ORIGINAL_PARAM


def _trace_init(tr: _Tracer, model: nn.Module, args: Sequence[jax.ShapeDtypeStruct], kwargs: Dict[str, Any]):
    """make_jaxpr of `model.init_with_output(rngs, *args, **kwargs)` with leaf layers tagged
    into `tr`: (jaxpr, abstract outputs, abstract variables, initialisers). jaxpr.invars are
    (rng key, *args); its outvars the outputs, then the variables in jax's tree order."""
    initialisers: Dict[Tuple[str, ...], Any] = {}

    def init_fn(key, *xs):
        with nn.intercept_methods(_make_interceptor(tr)), zero_initialisers(initialisers):
            return model.init_with_output({"params": key, "dropout": key}, *xs, **kwargs)

    key = jax.ShapeDtypeStruct((2,), jnp.uint32)
    closed, (outputs_shape, variables_shape) = jax.make_jaxpr(init_fn, return_shape=True)(key, *args)
    return closed.jaxpr, outputs_shape, variables_shape, initialisers


def _free_params(tr: _Tracer, jaxpr: Jaxpr, n_out: int, variables_shape) -> List[Tuple[int, Tuple[str, ...]]]:
    """(outvar index, variable path) of the parameters not consumed inside a leaf layer."""
    var_paths = [tuple(p.split("/")) for p in tree_paths.flatten(variables_shape)]
    leaf_params = {("params",) + l.path for l in tr.leaves}
    return [(n_out + k, path) for k, (v, path) in enumerate(zip(jaxpr.outvars[n_out:], var_paths))
            if path[0] == "params" and path[:-1] not in leaf_params and not isinstance(v, Literal)]


def _set_pos_enc_shapes(tr: _Tracer, variables_shape):
    for f in (tr.nodes[n] for n in tr.pos_enc_of.values()):
        f.shape = tuple(tree_paths.get(variables_shape, "/".join(f.param)).shape)


def _result(tr: _Tracer, out_srcs: List[frozenset], input_node: int, variables_shape, input_shape,
            initialisers) -> TraceResult:
    _set_pos_enc_shapes(tr, variables_shape)
    out = _finalise(tr, out_srcs, input_node)
    live = [i for i in range(len(tr.nodes)) if i not in tr.dropped]
    edges = {(u, v) for u, v in tr.edges if u not in tr.dropped and v not in tr.dropped}
    return TraceResult(tr.nodes, edges, live, out, variables_shape, tuple(input_shape), initialisers)


def trace(model: nn.Module, input_shape: Sequence[int], *, train: bool = True,
          call_kwargs: Optional[Dict[str, Any]] = None,
          timings: Optional[Dict[str, float]] = None) -> TraceResult:
    """Traces `model` on an NHWC input of `input_shape` (batch first).

    train=True traces torch's train mode as the reference does (aux heads, dropout and
    stochastic depth present). Nothing is computed: shapes only. If given, `timings`
    receives the seconds spent in 'jaxpr' (JAX tracing) and 'rules' (the graph pass).
    """
    t0 = time.perf_counter()
    tr = _Tracer()
    kwargs = dict(_call_kwargs(model, train)) if call_kwargs is None else dict(call_kwargs)
    input_node = tr.add_node(TracedNode("input", op="input"))
    x = jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)
    jaxpr, outputs_shape, variables_shape, initialisers = _trace_init(tr, model, (x,), kwargs)

    t1 = time.perf_counter()
    w = _Walker(tr)
    w.src[jaxpr.invars[1]] = frozenset({input_node})
    n_out = len(jax.tree_util.tree_leaves(outputs_shape))
    for k, path in _free_params(tr, jaxpr, n_out, variables_shape):
        v = jaxpr.outvars[k]
        w.free[v] = _FreeParam(path, True, tuple(v.aval.shape))
    w.walk(jaxpr)
    out_srcs = [w.S(v) for v in jaxpr.outvars[:n_out]]
    result = _result(tr, out_srcs, input_node, variables_shape, input_shape, initialisers)
    if timings is not None:
        timings["jaxpr"] = t1 - t0
        timings["rules"] = time.perf_counter() - t1
    return result
