"""The GHN graph of a DeepNets network, assembled from cached per-op traces.

`arch_graph(spec)` equals `build_graph(Network(spec))` (a whole trace of the Flax network)
but traces each op module once per (op spec, input shape) and replays the cached traces
(ghn_jax/graph/fragments.py). The ops of DeepNets-1M networks repeat across networks (the
op universe at 32 px is a few thousand), so after the first networks of a stream a graph
costs ~10-30 ms instead of ~0.25-0.6 s; it is built on the data-loading thread of every
training step.
"""
import threading
from collections import OrderedDict
from typing import Optional, Tuple

import jax
import jax.numpy as jnp

from ghn_jax.deepnets.network import NetPlan, Ops, input_size, net_plan, run_plan
from ghn_jax.deepnets.ops import OpSpec, make_op
from ghn_jax.graph import ArchGraph
from ghn_jax.graph.fragments import Composition, Fragment, trace_fragment
from ghn_jax.graph.graph import assemble

# A fragment holds a small jaxpr (~10-200 KB); the 32-px universe fits well under the cap.
MAX_FRAGMENTS = 8192
_FRAGMENTS: "OrderedDict[Tuple, Fragment]" = OrderedDict()
_LOCK = threading.Lock()
_KEY = jax.ShapeDtypeStruct((2,), jnp.uint32)


def _fragment(spec: OpSpec, shape: Tuple[int, ...], dropout: bool) -> Fragment:
    key = (spec, shape, dropout)
    with _LOCK:
        frag = _FRAGMENTS.get(key)
        if frag is not None:
            _FRAGMENTS.move_to_end(key)
            return frag
    args = (jax.ShapeDtypeStruct(shape, jnp.float32),) + ((_KEY,) if dropout else ())
    frag = trace_fragment(make_op(spec), args)
    with _LOCK:
        _FRAGMENTS[key] = frag
        while len(_FRAGMENTS) > MAX_FRAGMENTS:
            _FRAGMENTS.popitem(last=False)
    return frag


class _Value:
    __slots__ = ("id", "shape")

    def __init__(self, vid: int, shape: Tuple[int, ...]):
        self.id, self.shape = vid, tuple(shape)


class _GraphOps(Ops):
    """run_plan's callbacks on symbolic values: what the Flax Network does, as fragment steps."""

    def __init__(self, comp: Composition, dropout: bool):
        self.comp, self.dropout = comp, dropout

    def apply(self, name, spec, x):
        frag = _fragment(spec, x.shape, False)
        return _Value(self.comp.apply(name, frag, [x.id]), frag.out_shape.shape)

    def head(self, name, spec, x):
        # The Network passes a dropout key to a two-layer classifier in train mode.
        dropout = self.dropout and bool(spec.hidden)
        frag = _fragment(spec, x.shape, dropout)
        return _Value(self.comp.apply(name, frag, [x.id] + ([None] if dropout else [])), frag.out_shape.shape)

    def add(self, a, b):
        return _Value(self.comp.add(a.id, b.id), a.shape)

    def concat(self, xs):
        shape = xs[0].shape[:-1] + (sum(x.shape[-1] for x in xs),)
        return _Value(self.comp.concat([x.id for x in xs]), shape)

    def zeros_like(self, x):
        return _Value(self.comp.same(x.id), x.shape)


def plan_graph(plan: NetPlan, input_shape: Tuple[int, ...], name: str = "", train: bool = True) -> ArchGraph:
    """The graph of the network of `plan` on NHWC inputs of `input_shape` (batch first);
    train: trace torch's train mode (the classifier's dropout), as build_graph does."""
    comp = Composition(input_shape)
    out = run_plan(plan, _Value(0, input_shape), _GraphOps(comp, train))
    return assemble(comp.result(out.id), name)


def arch_graph(spec, imagenet: bool = True, input_shape: Optional[Tuple[int, ...]] = None) -> ArchGraph:
    """The ArchGraph of a DeepNets network; equal to tracing its Flax `Network` whole."""
    size = input_size(imagenet)
    return plan_graph(net_plan(spec, imagenet), tuple(input_shape or (2, size, size, 3)),
                      name=f"deepnets/{getattr(spec, 'split', '')}/{getattr(spec, 'index', '')}")


def clear() -> None:
    with _LOCK:
        _FRAGMENTS.clear()
