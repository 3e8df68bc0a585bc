"""DARTS-style cell genotypes of the DeepNets-1M space and the random cell sampler.

A genotype describes two cells (normal and reduction). Each cell has `steps` intermediate states; state
`i + 2` is the sum of two ops applied to earlier states (0 and 1 are the cell inputs). The cell output is
the channel-concat of the states listed in `*_concat`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence, Tuple

import numpy as np

# The 15 ops of the extended DARTS space, in the reference order (the index matters for `only_pool`:
# every op from index 4 on has parameters).
OPS_EXT: Tuple[str, ...] = (
    "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
    "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
    "conv_1x1", "conv_7x1_1x7", "conv_3x3", "conv_5x5", "conv_7x7",
    "msa", "cse",
)
_NONE = OPS_EXT.index("none")
_MSA = OPS_EXT.index("msa")
_FIRST_PARAMETRIC = OPS_EXT.index("sep_conv_3x3")

Edge = Tuple[str, int]  # (op name, input state index)


@dataclasses.dataclass(frozen=True)
class Genotype:
    normal: Tuple[Edge, ...]
    normal_concat: Tuple[int, ...]
    reduce: Tuple[Edge, ...]
    reduce_concat: Tuple[int, ...]

    @property
    def all_ops(self) -> Tuple[str, ...]:
        return tuple(op for op, _ in self.normal + self.reduce)

    def to_dict(self) -> dict:
        """JSON form used by the DeepNets-1M meta files: lists of [op, idx]."""
        return {"normal": [[op, int(i)] for op, i in self.normal],
                "normal_concat": [int(i) for i in self.normal_concat],
                "reduce": [[op, int(i)] for op, i in self.reduce],
                "reduce_concat": [int(i) for i in self.reduce_concat]}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "Genotype":
        return from_dict(d)


def _edges(seq: Sequence[Sequence[Any]]) -> Tuple[Edge, ...]:
    return tuple((str(op), int(i)) for op, i in seq)


def from_dict(d: Mapping[str, Any]) -> Genotype:
    return Genotype(normal=_edges(d["normal"]), normal_concat=tuple(int(i) for i in d["normal_concat"]),
                    reduce=_edges(d["reduce"]), reduce_concat=tuple(int(i) for i in d["reduce_concat"]))


def to_dict(g: Genotype) -> dict:
    return g.to_dict()


def parse_op(name: str) -> Tuple[str, int]:
    """'sep_conv_5x5' -> ('sep_conv', 5); 'conv_7x1_1x7' -> ('conv2', 7); 'msa' -> ('msa', 0).

    Tokens of the form AxB are kernel sizes (ks = the largest number seen); two such tokens mean a
    factorised (double) conv, whose kind gets a '2' suffix. Other tokens form the kind.
    """
    ks, n_ks, kind = 0, 0, []
    for tok in name.split("_"):
        parts = tok.split("x")
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            ks, n_ks = max(ks, *(int(p) for p in parts)), n_ks + 1
        else:
            kind.append(tok)
    out = "_".join(kind) + ("2" if n_ks > 1 else "")
    return out, ks


def _parse_cell(w: np.ndarray, steps: int, allow_none: bool) -> Tuple[Edge, ...]:
    """DARTS discretisation of one cell's op weights `w` (rows = edges, cols = OPS_EXT)."""
    allowed = np.ones(w.shape[1], bool)
    if not allow_none:
        allowed[_NONE] = False
    wa = np.where(allowed, w, -np.inf)
    gene, start = [], 0
    for i in range(steps):
        rows = wa[start:start + i + 2]
        best = rows.max(axis=1)
        # Two inputs with the largest best-op weight, strongest first (stable on ties, like sorted()).
        for j in np.argsort(-best, kind="stable")[:2]:
            gene.append((OPS_EXT[int(np.argmax(rows[j]))], int(j)))
        start += i + 2
    return tuple(gene)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sample_genotype(rng: np.random.Generator, steps: int = 1, only_pool: bool = False, allow_none: bool = True,
                    drop_concat: bool = True, allow_transformer: bool = False) -> Genotype:
    """Random cell pair with the reference rules: tiny random logits, masked, softmax, DARTS parse.

    With i.i.d. logits this amounts to uniform choices of inputs and ops; we keep the literal parse so
    masking semantics (only_pool, allow_transformer, allow_none) are exactly those of the reference.
    """
    k = sum(i + 2 for i in range(steps))
    a_normal = 1e-3 * rng.standard_normal((k, len(OPS_EXT)))
    a_reduce = 1e-3 * rng.standard_normal((k, len(OPS_EXT)))
    if only_pool:  # reduction cell without trainable ops
        a_reduce[:, _FIRST_PARAMETRIC:] = -1000.0
    if not allow_transformer:
        a_normal[:, _MSA] = -1000.0
        a_reduce[:, _MSA] = -1000.0
    normal = _parse_cell(_softmax(a_normal), steps, allow_none)
    reduce = _parse_cell(_softmax(a_reduce), steps, allow_none)
    if drop_concat:  # the last state is always kept, otherwise earlier sums would be lost
        concat = tuple(i for i in range(2, steps + 2) if i == steps + 1 or rng.random() > 0.5)
    else:
        concat = tuple(range(2, steps + 2))
    return Genotype(normal=normal, normal_concat=concat, reduce=reduce, reduce_concat=concat)


# Predefined ViT-like cell (ppuda `genotypes.ViT`): a single msa per normal cell, avg-pool in reduction cells.
VIT = Genotype(normal=(("none", 0), ("msa", 1)), normal_concat=(2,),
               reduce=(("none", 0), ("avg_pool_3x3", 1)), reduce_concat=(2,))
