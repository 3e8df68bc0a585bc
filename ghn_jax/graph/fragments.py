"""Graphs of networks assembled from separately traced modules, equal to one whole trace.

Tracing a whole Flax network costs ~0.25-0.6 s, almost all of it in Flax and jax's tracing
machinery, not in the graph rules; a stream of random architectures (DeepNets-1M) pays it
for every network. But such networks are compositions of a few thousand distinct modules
(an op spec at an input shape), glued by additions and concatenations. So each module is
traced once, alone (`trace_fragment`: its jaxpr, with its leaf layers tagged), and a
network's graph is built by *replaying* the tracer's own jaxpr pass over the cached
fragments in execution order, with the glue ops applied by the same rules (`Composition`).

This is the whole trace, not an approximation of it: the tracer's state is global (node
ids, ancestor sets, gates, attention cores) and the pass visits the same equations in the
same order, so every rule sees what it would have seen. Two things make the order
identical: the leaf layers' nodes are created first, all of them, as the whole trace's
interceptor does while jax traces (before the pass); and each replay gets its own variable
maps, since one cached jaxpr may be replayed several times in one network.
`tests/deepnets/test_fast_graph.py` checks equality with whole traces over every split.
"""
import dataclasses
from typing import Any, Dict, List, Sequence, Tuple

import jax

from ghn_jax.graph.tracer import (TracedNode, TraceResult, _FreeParam, _Leaf, _Tracer, _Walker,
                                  _call_kwargs, _free_params, _result, _trace_init)

Path = Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Fragment:
    """One module traced alone on abstract arguments."""
    jaxpr: Any                                   # invars: (rng key, *args); outvars: outputs, variables
    n_args: int
    out_shape: Any                               # pytree of ShapeDtypeStruct
    leaves: Tuple[Tuple[Path, str, Tuple[TracedNode, ...]], ...]   # (path, layer type, node chain)
    free: Tuple[Tuple[int, Path], ...]           # (outvar index, variable path) of free parameters
    variables: Any                               # abstract variables of the module alone
    initialisers: Dict[Path, Any]


def trace_fragment(module, args: Sequence[jax.ShapeDtypeStruct], train: bool = True) -> Fragment:
    """`module` (unbound, as its parent would create it) traced on `args` alone."""
    tr = _Tracer()
    jaxpr, out_shape, variables, inits = _trace_init(tr, module, tuple(args), _call_kwargs(module, train))
    leaves = tuple((l.path, l.module_type, tuple(tr.nodes[i] for i in l.nodes)) for l in tr.leaves)
    n_out = len(jax.tree_util.tree_leaves(out_shape))
    return Fragment(jaxpr, len(args), out_shape, leaves, tuple(_free_params(tr, jaxpr, n_out, variables)),
                    variables, inits)


def _prefixed(node: TracedNode, name: str) -> TracedNode:
    put = lambda p: None if p is None else (p[0], name) + tuple(p[1:])
    return dataclasses.replace(node, param=put(node.param), extra_params=tuple(put(p) for p in node.extra_params),
                               module=(name,) + tuple(node.module))


class Composition:
    """A network's trace built from fragments; values are ints (0: the network's input).

        c = Composition(input_shape)
        y = c.apply('stem', fragment, [0])         # the module named 'stem' of the network
        z = c.add(y, c.apply(...)); w = c.concat([...]); c.result(out)
    """

    def __init__(self, input_shape: Sequence[int]):
        self.input_shape = tuple(input_shape)
        self._steps: List[Tuple] = []
        self._n = 1

    def _new(self, step) -> int:
        self._steps.append(step + (self._n,))
        self._n += 1
        return self._n - 1

    def apply(self, name: str, fragment: Fragment, inputs: Sequence[int]) -> int:
        """The module `name` of the network on values `inputs` (its graph arguments: None for
        arguments that carry no activations, such as a dropout key)."""
        return self._new(("apply", name, fragment, tuple(inputs)))

    def add(self, a: int, b: int) -> int:
        return self._new(("add", (a, b)))

    def concat(self, xs: Sequence[int]) -> int:
        return self._new(("concat", tuple(xs)))

    def same(self, x: int) -> int:
        """A value computed from x alone by ops the graph does not show (x * 0, reshapes)."""
        return self._new(("same", (x,)))

    def result(self, out: int) -> TraceResult:
        tr = _Tracer()
        input_node = tr.add_node(TracedNode("input", op="input"))
        # The whole trace creates every leaf layer's nodes while jax traces, before its pass.
        offsets = {}
        for step in self._steps:
            if step[0] != "apply":
                continue
            _, name, frag, _, v = step
            offsets[v] = len(tr.leaves)
            for path, mtype, chain in frag.leaves:
                full = (name,) + tuple(path)
                tr.leaf_by_path[full] = len(tr.leaves)
                tr.leaves.append(_Leaf(full, mtype, [tr.add_node(_prefixed(n, name)) for n in chain], True))

        src: Dict[int, frozenset] = {0: frozenset({input_node})}
        glue = _Walker(tr)
        params: Dict[str, Any] = {}
        initialisers: Dict[Path, Any] = {}
        for step in self._steps:
            kind, v = step[0], step[-1]
            if kind == "apply":
                _, name, frag, inputs, _ = step
                w = _Walker(tr, leaf_offset=offsets[v])
                jaxpr = frag.jaxpr
                for iv, u in zip(jaxpr.invars[1:1 + frag.n_args], inputs):
                    if u is not None and src[u]:
                        w.src[iv] = src[u]
                for k, path in frag.free:
                    ov = jaxpr.outvars[k]
                    w.free[ov] = _FreeParam((path[0], name) + tuple(path[1:]), True, tuple(ov.aval.shape))
                w.walk(jaxpr)
                src[v] = w.S(jaxpr.outvars[0])
                if frag.variables.get("params"):
                    params[name] = frag.variables["params"]
                initialisers.update({(p[0], name) + tuple(p[1:]): i for p, i in frag.initialisers.items()})
            else:
                ins = [src[u] for u in step[1]]
                union = frozenset().union(*ins)
                if kind == "add":           # the pass's own rules (no free parameters here)
                    src[v] = glue.add(None, ins, [None] * len(ins), union)
                elif kind == "concat":
                    src[v] = glue.concat(ins, union)
                else:
                    src[v] = union
        variables = {"params": params} if params else {}
        return _result(tr, [src[out]], input_node, variables, self.input_shape, initialisers)
