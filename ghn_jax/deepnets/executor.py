"""Training-time executor: run a stream of never-seen DeepNets networks without compiling
each one (design and measurements: docs/deepnets.md, "Executor").

A network is a walk over its plan (network.run_plan). Here every op of the walk is one
jitted *kernel* keyed by (OpSpec, input shapes): the kernel returns the op's output and
its VJP closure (`jax.vjp` inside `jax.jit`; the closure is a pytree of residuals), and
one generic jitted function applies a VJP closure to a cotangent. The forward records a
tape; `backward` walks it in reverse. Compilations are therefore bounded by the number
of distinct (op, channels, resolution, batch) buckets, not by the number of
architectures: a new genotype reuses the kernels of the ops it is made of.

Values are exactly those of the Flax `Network` (the same modules, applied op by op);
gradients are jax's own VJPs of those modules.
"""
import dataclasses
import functools
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from ghn_jax.deepnets.network import NetPlan, Ops, run_plan
from ghn_jax.deepnets.ops import OpSpec, make_op


def _apply(key: Tuple, p, xs):
    kind = key[0]
    if kind == "op":
        return make_op(key[1]).apply({"params": p}, xs[0])
    if kind == "head":
        return make_op(key[1]).apply({"params": p}, xs[0], xs[1] if len(xs) > 1 else None)
    if kind == "add":
        return xs[0] + xs[1]
    if kind == "concat":
        return jnp.concatenate(xs, axis=-1)
    if kind == "zeros":
        return xs[0] * 0.0
    raise ValueError(kind)


# Kernels are small: on CPU their time is in library convolutions and matmuls, while
# XLA's backend optimisation roughly doubles their compile time (docs/deepnets.md).
_OPTS = {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else None


@functools.partial(jax.jit, static_argnums=0, compiler_options=_OPTS)
def _fwd_kernel(key, p, xs):
    """(output, vjp closure) of one op; the closure is a pytree (residuals + a static jaxpr)."""
    return jax.vjp(functools.partial(_apply, key), p, xs)


@functools.partial(jax.jit, compiler_options=_OPTS)
def _bwd_kernel(vjp, g):
    return vjp(g)


@jax.jit
def _accumulate(a, b):
    return a + b


@dataclasses.dataclass
class _Entry:
    vjp: Any
    ins: Tuple[int, ...]
    out: int
    name: Optional[str]       # parameter module name, or None


class Tape:
    """What the forward recorded: one entry per kernel call, in execution order."""

    def __init__(self):
        self.entries: List[_Entry] = []
        self.n_values = 0
        self.input_id: int = -1
        self.output_id: int = -1

    def new_value(self) -> int:
        self.n_values += 1
        return self.n_values - 1


class _V:
    """An activation on the tape: the array and its value id."""
    __slots__ = ("a", "i")

    def __init__(self, a, i):
        self.a, self.i = a, i


class _TapeOps(Ops):
    def __init__(self, params: Dict[str, Any], tape: Tape, dropout_key, record: bool):
        self.params, self.tape, self.dropout_key, self.record = params, tape, dropout_key, record

    def _call(self, key, name, xs):
        p = self.params[name] if name is not None else {}
        out, vjp = _fwd_kernel(key, p, tuple(x.a for x in xs))
        v = _V(out, self.tape.new_value())
        if self.record:
            self.tape.entries.append(_Entry(vjp, tuple(x.i for x in xs), v.i, name))
        return v

    def apply(self, name, spec: OpSpec, x):
        return self._call(("op", spec), name if name in self.params else None, (x,))

    def head(self, name, spec, x):
        xs = (x,) if self.dropout_key is None else (x, _V(self.dropout_key, -1))
        return self._call(("head", spec), name, xs)

    def add(self, a, b):
        return self._call(("add",), None, (a, b))

    def concat(self, xs):
        return self._call(("concat",), None, tuple(xs))

    def zeros_like(self, x):
        return self._call(("zeros",), None, (x,))


class Executor:
    """Runs DeepNets networks op by op with cached kernels; gradients by a reverse tape walk.

        ex = Executor()
        logits, tape = ex.forward(plan, params, images)       # params: {module name: subtree}
        grads, g_images = ex.backward(tape, g_logits)         # same structure as params
    """

    def forward(self, plan: NetPlan, params: Dict[str, Any], x: jax.Array,
                dropout_key: Optional[jax.Array] = None, record: bool = True):
        """Logits (B, num_classes) float32 and the tape. x: (B, H, W, 3) NHWC images."""
        tape = Tape()
        v = _V(x, tape.new_value())
        tape.input_id = v.i
        out = run_plan(plan, v, _TapeOps(params, tape, dropout_key, record))
        tape.output_id = out.i
        return out.a, tape

    def backward(self, tape: Tape, g_out: jax.Array):
        """(grads {module name: subtree}, cotangent of the input images)."""
        cots: Dict[int, Any] = {tape.output_id: g_out}
        grads: Dict[str, Any] = {}
        for entry in reversed(tape.entries):
            g = cots.pop(entry.out, None)
            if g is None:
                continue                      # the value does not reach the loss
            gp, gxs = _bwd_kernel(entry.vjp, g)
            if entry.name is not None:
                grads[entry.name] = gp
            for i, gx in zip(entry.ins, gxs):
                if i < 0:
                    continue                  # an rng key
                cots[i] = gx if i not in cots else _accumulate(cots[i], gx)
        return grads, cots.get(tape.input_id)


# ------------------------------------------------------------------------------------------
# Losses and compile accounting
# ------------------------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("label_smoothing",))
def cross_entropy_and_grad(logits, labels, label_smoothing: float = 0.0):
    """Mean CE with label smoothing (torch's definition) and its gradient w.r.t. logits."""
    def ce(z):
        k = z.shape[-1]
        logp = jax.nn.log_softmax(z.astype(jnp.float32), -1)
        onehot = jax.nn.one_hot(labels, k)
        target = onehot * (1.0 - label_smoothing) + label_smoothing / k
        return -jnp.mean(jnp.sum(target * logp, -1))
    return jax.value_and_grad(ce)(logits)


class CompileCounter:
    """Counts XLA compilations and their seconds while active (jax.monitoring events)."""

    def __init__(self):
        self.count, self.seconds = 0, 0.0
        self._on = False
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event: str, duration: float, **_):
        if self._on and event == "/jax/core/compile/backend_compile_duration":
            self.count += 1
            self.seconds += duration

    def __enter__(self):
        self._on = True
        return self

    def __exit__(self, *exc):
        self._on = False
