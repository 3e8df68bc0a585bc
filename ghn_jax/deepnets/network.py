"""DeepNets-1M networks: a spec -> a plan of ops -> a Flax `Network` (§4.1).

`net_plan(spec)` does the reference's channel and stride bookkeeping once and lists
every op with its `OpSpec` and module name. `run_plan` walks a plan with callbacks for
"apply this op", "add", "concat" and "zeros": the Flax `Network` passes callbacks that
call Flax submodules, the training executor (executor.py) callbacks that call cached
jitted kernels. Both therefore run the same wiring, including the reference's handling
of `none` ops (a state fed only by `none` ops is absent; absent concat inputs become
zeros shaped like a present one).

Module names are the reference's torch module paths with their dots kept
('cells.3._ops.1', 'stem0', 'classifier'), so the top-level parameter dict is flat by
op and the generic Flax <-> torch naming rule yields the reference parameter names.
"""
import dataclasses
from typing import Any, Optional, Sequence, Tuple

import jax.numpy as jnp
import flax.linen as nn

from ghn_jax.deepnets.genotypes import parse_op
from ghn_jax.errors import GhnError
from ghn_jax.deepnets.ops import OpSpec, cell_op, make_op


@dataclasses.dataclass(frozen=True)
class CellPlan:
    name: str                              # 'cells.{i}'
    pre0: Optional[OpSpec]                 # None: identity
    pre1: Optional[OpSpec]
    ops: Tuple[Tuple[str, Optional[OpSpec]], ...]   # per genotype edge: ('none'|'identity'|'op', spec)
    inputs: Tuple[int, ...]                # per edge: input state index
    concat: Tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class NetPlan:
    stem: Tuple[Tuple[str, OpSpec], ...]   # (module name, spec) in order
    stem_kind: str                         # 'vit' | 'simple' | 'imnet'
    cells: Tuple[CellPlan, ...]
    head: OpSpec
    input_size: int

    def ops(self):
        """(module name, OpSpec) of every op with a module, in execution order."""
        out = list(self.stem)
        for c in self.cells:
            out += [(f"{c.name}.{n}", s) for n, s in (("preprocess0", c.pre0), ("preprocess1", c.pre1)) if s]
            out += [(f"{c.name}._ops.{k}", s) for k, (kind, s) in enumerate(c.ops) if kind == "op"]
        return out + [("classifier", self.head)]


def net_plan(spec: Any, imagenet: bool = True) -> NetPlan:
    """The op plan of a DeepNets spec (fields of sampler.NetSpec) for 224 or 32 px inputs.

    Channel bookkeeping follows the reference Network exactly: reductions at cells
    n//3 and 2n//3 multiply channels by C_mult (and stride ops on the cell inputs unless
    the net is a ViT); preprocessing is FactorizedReduce after a reduction, else a 1x1
    ReLU-conv-BN; the head pools globally or flattens a fixed s x s map.
    """
    g = spec.genotype
    if g is None:
        raise GhnError(f"{getattr(spec, 'arch', None) or 'this spec'} is not a DeepNets cell network; "
                       f"build it with ghn_jax.zoo.get('{getattr(spec, 'arch', None)}')")
    norm = spec.norm is not None and spec.norm not in ("", "none")
    is_vit = any(op == "msa" for op, _ in tuple(g.normal) + tuple(g.reduce))
    C, n_cells = int(spec.C), int(spec.n_cells)
    steps = len(g.normal_concat)
    stride = int(getattr(spec, "imagenet_stride", 4) or 4)
    if is_vit:
        k = 16 if imagenet else 3
        stem = (("stem0", OpSpec("stem_vit", 3, C, k, k, pad=int(k < 4))),
                ("pos_enc", OpSpec("pos_enc", C, C, size=14 if imagenet else 11)))
        kind = "vit"
        c_pp = c_p = C
    elif spec.stem_type == 0:
        c_stem = C * (3 if (spec.preproc and not imagenet) else 1)
        stem = (("stem", OpSpec("stem_simple", 3, c_stem, spec.ks, stride if imagenet else 1, norm,
                                pool=bool(spec.stem_pool))),)
        kind = "simple"
        c_pp = c_p = c_stem
    else:
        s = 2 if imagenet else 1
        stem = (("stem0", OpSpec("stem_imnet0", 3, C, spec.ks, s, norm)),
                ("stem1", OpSpec("stem_imnet1", C, C, 3, 2, norm)))
        kind = "imnet"
        c_pp = c_p = C
    c_curr = C
    is_red = lambda i: i in (n_cells // 3, 2 * n_cells // 3) and i > 0
    red_prev = spec.stem_type == 1               # ViT cells ignore it (no spatial reduction)
    cells = []
    for i in range(n_cells):
        red = is_red(i)
        if red:
            c_curr *= spec.C_mult
        c_in = c_curr if spec.preproc else c_p
        c_out = c_curr * (spec.C_mult if is_red(i + 1) and steps == 1 and not spec.preproc else 1)
        if spec.preproc:
            pre0 = (OpSpec("fact_reduce", c_pp, c_out, 1, 2, norm) if red_prev and not is_vit
                    else OpSpec("relu_conv_bn", c_pp, c_out, 1, 1, norm))
            pre1 = OpSpec("relu_conv_bn", c_p, c_out, 1, 1, norm)
        else:
            pre0 = OpSpec("stride", c_pp, c_pp, 0, 2) if red_prev and not is_vit else None
            pre1 = None
        edges = g.reduce if red else g.normal
        concat = tuple(g.reduce_concat if red else g.normal_concat)
        ops = []
        for op_name, idx in edges:
            op_kind, ks = parse_op(op_name)
            st = 2 if (red and idx < 2 and not is_vit) else 1
            o = cell_op(op_kind, ks, c_in if idx <= 1 else c_out, c_out, st, norm)
            ops.append(("none" if op_kind == "none" else ("identity" if o is None else "op"), o))
        cells.append(CellPlan(f"cells.{i}", pre0, pre1, tuple(ops), tuple(int(i) for _, i in edges), concat))
        red_prev = red
        c_pp, c_p = c_p, len(concat) * c_curr
    flatten = not spec.glob_avg
    c_head = c_p
    if flatten:
        if imagenet:
            s = 7 if (spec.stem_type == 1 or spec.stem_pool) else 14
        else:
            s = 4 if (spec.stem_type == 1 or spec.stem_pool) else 8
        c_head = c_p * s * s
    n_cls = int(getattr(spec, "num_classes", 1000))
    head = OpSpec("classifier", c_head, n_cls, hidden=int(spec.fc_dim) if spec.fc_layers > 1 else 0,
                  flatten_nchw=flatten)
    return NetPlan(stem, kind, tuple(cells), head, input_size(imagenet))


def input_size(imagenet: bool) -> int:
    """The image side DeepNets networks are built for (ImageNet or CIFAR stems)."""
    return 224 if imagenet else 32


class Ops:
    """The callbacks `run_plan` needs. x values may be None (an absent state)."""

    def apply(self, name: str, spec: OpSpec, x):
        raise NotImplementedError

    def add(self, a, b):
        return a + b

    def concat(self, xs: Sequence[Any]):
        return jnp.concatenate(list(xs), axis=-1)

    def zeros_like(self, x):
        return x * 0.0

    def head(self, name: str, spec: OpSpec, x):
        return self.apply(name, spec, x)


def run_cell(cell: CellPlan, s0, s1, ops: Ops):
    s0 = None if s0 is None else (ops.apply(f"{cell.name}.preprocess0", cell.pre0, s0) if cell.pre0 else s0)
    s1 = None if s1 is None else (ops.apply(f"{cell.name}.preprocess1", cell.pre1, s1) if cell.pre1 else s1)
    states = [s0, s1]
    for i in range(len(cell.ops) // 2):
        s = None
        hs = []
        for e in (2 * i, 2 * i + 1):
            kind, spec = cell.ops[e]
            h = states[cell.inputs[e]]
            if kind == "none" or h is None:
                continue
            hs.append(ops.apply(f"{cell.name}._ops.{e}", spec, h) if kind == "op" else h)
        if len(hs) == 2:
            s = ops.add(hs[0], hs[1])
        elif hs:
            s = hs[0]
        states.append(s)
    present = [states[i] for i in cell.concat if states[i] is not None]
    if not present:
        return None
    if len(present) < len(cell.concat):
        zero = ops.zeros_like(present[0])
        outs = [states[i] if states[i] is not None else zero for i in cell.concat]
    else:
        outs = [states[i] for i in cell.concat]
    return outs[0] if len(outs) == 1 else ops.concat(outs)


def check_vit_input(plan: NetPlan, height: int, width: int) -> None:
    """Attention (msa) networks add a fixed s x s positional encoding after their patch stem
    (the reference's Network), so they take one image size only (plan.input_size: 32 px with
    the CIFAR stem, 224 with the ImageNet one). Raises a GhnError for any other (H, W)."""
    stem, pos_enc = plan.stem[0][1], plan.stem[1][1]
    side = lambda n: (n + 2 * stem.pad - stem.ks) // stem.stride + 1
    if (side(height), side(width)) != (pos_enc.size, pos_enc.size):
        raise GhnError(f"this DeepNets network has attention cells (msa) with a fixed {pos_enc.size}x{pos_enc.size} "
                       f"positional encoding: it takes {plan.input_size}x{plan.input_size} images, "
                       f"got {height}x{width}")


def run_plan(plan: NetPlan, x, ops: Ops):
    """Logits of the network for images x (B, H, W, 3)."""
    if plan.stem_kind == "vit":
        check_vit_input(plan, x.shape[1], x.shape[2])
        s0 = s1 = ops.apply("pos_enc", plan.stem[1][1], ops.apply("stem0", plan.stem[0][1], x))
    elif plan.stem_kind == "simple":
        s0 = s1 = ops.apply("stem", plan.stem[0][1], x)
    else:
        s0 = ops.apply("stem0", plan.stem[0][1], x)
        s1 = ops.apply("stem1", plan.stem[1][1], s0)
    for cell in plan.cells:
        s0, s1 = s1, run_cell(cell, s0, s1, ops)
    if s1 is None:
        raise GhnError("the network has an invalid configuration: its output is None (every state of a "
                       "cell comes from `none` ops); such genotypes are rejected by the sampler")
    return ops.head("classifier", plan.head, s1)


class _FlaxOps(Ops):
    """Submodules are created while Network.__call__ runs, so Flax binds them to it."""

    def __init__(self, dropout_key):
        self.dropout_key = dropout_key

    def apply(self, name, spec, x):
        return make_op(spec, name=name)(x)

    def head(self, name, spec, x):
        return make_op(spec, name=name)(x, self.dropout_key)


class Network(nn.Module):
    """A DeepNets-1M network (the reference's NetworkLight) for NHWC images.

    `__call__(x, train=False)`: batch norms always use batch statistics; `train=True`
    enables the classifier's dropout (rng 'dropout').
    """
    spec: Any
    imagenet: bool = True

    @property
    def plan(self) -> NetPlan:
        return net_plan(self.spec, self.imagenet)

    @nn.compact
    def __call__(self, x, train: bool = False):
        key = self.make_rng("dropout") if (train and self.spec.fc_layers > 1) else None
        return run_plan(self.plan, x, _FlaxOps(key))
