"""Random-access sampler of DeepNets-1M-style architectures.

`sample(split, index)` draws net `index` of `split` from its own numpy Generator seeded with
`SeedSequence([split_seed, index])`, so any index can be produced alone, in any order, in any process.
The rejection loop and all rules follow ppuda's `experiments/net_generator.py`; the sequence itself is NOT
the published one (see docs/deepnets.md, "Why the reference sequence is not replayed").
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np

from ghn_jax.deepnets.genotypes import VIT, Genotype, from_dict, sample_genotype
from ghn_jax.deepnets.param_count import count_params
from ghn_jax.errors import GhnError

SPLITS: Tuple[str, ...] = ("train", "val", "test", "wide", "deep", "dense", "bnfree", "predefined")

# Per-split seed of the per-index SeedSequence. val/train keep the generator's seeds (0/1); the others get
# distinct seeds so that no two splits share nets, except wide, which *is* the test split (wider at eval).
_SEEDS = {"val": 0, "train": 1, "test": 2, "wide": 2, "deep": 3, "dense": 4, "bnfree": 5, "predefined": 6}


@dataclasses.dataclass(frozen=True)
class _Rules:
    min_layers: int = 4
    max_layers: int = 18
    deep_layers: Tuple[int, ...] = (7, 8, 9, 10)  # threshold above which a net counts as deep
    min_steps: int = 1
    medium_steps: int = 2  # max steps of deep nets
    max_steps: int = 4
    max_params: int = 10 ** 7
    bnfree: bool = False


_RULES: Dict[str, _Rules] = {
    "train": _Rules(), "val": _Rules(), "test": _Rules(), "wide": _Rules(),
    "bnfree": _Rules(bnfree=True),
    "deep": _Rules(min_layers=10, max_layers=36, deep_layers=(18,), max_params=10 ** 8),
    "dense": _Rules(min_steps=2, medium_steps=6, max_steps=10, max_params=10 ** 8),
}

# §4.2 per-sample training hyper-parameters (ghn3 DeepNets1MDDP with wider_nets=True).
FC_DIMS: Tuple[int, ...] = tuple(range(64, 513, 64))   # 64..512, 8 values
NUM_CH: Tuple[int, ...] = tuple(range(32, 129, 16))    # 32..128, 7 values
_MAX_ATTEMPTS = 10_000


@dataclasses.dataclass(frozen=True)
class NetSpec:
    """Everything needed to build one DeepNets-1M network (ppuda `Network` arguments + provenance).

    `arch` is set instead of `genotype` for named (zoo) architectures, i.e. predefined net 0 ('resnet50').
    `wide` marks the wide split: evaluation multiplies C by 2 (ImageNet) or 4 (CIFAR), see `eval_C`.
    """
    genotype: Optional[Genotype]
    n_cells: int = 0
    ks: int = 3
    C_mult: int = 1
    preproc: bool = True
    glob_avg: bool = True
    norm: Optional[str] = "bnorm"
    stem_type: int = 0
    stem_pool: bool = False
    fc_layers: int = 1
    fc_dim: int = 256
    C: int = 32
    imagenet_stride: int = 4
    num_classes: int = 1000
    split: str = "train"
    index: int = 0
    wide: bool = False
    arch: Optional[str] = None

    @property
    def is_vit(self) -> bool:
        return self.genotype is not None and "msa" in self.genotype.all_ops

    def eval_C(self, imagenet: bool = True) -> int:
        return self.C * ((2 if imagenet else 4) if self.wide else 1)

    def with_(self, **kw: Any) -> "NetSpec":
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["genotype"] = None if self.genotype is None else self.genotype.to_dict()
        return d

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "NetSpec":
        names = {f.name for f in dataclasses.fields(NetSpec)}
        kw = {k: v for k, v in d.items() if k in names}
        g = kw.get("genotype")
        kw["genotype"] = None if g is None else (g if isinstance(g, Genotype) else from_dict(g))
        return NetSpec(**kw)


def is_connected(genotype: Genotype, n_cells: int) -> bool:
    """Whether the network output is defined, simulating ppuda Cell.forward's None propagation.

    A state is None when each of its two ops is 'none' or reads a None state; a cell returns None iff all
    its concat states are None (others are zero-filled); preprocessing keeps None as None. The stems never
    give None, so the first cell sees two valid inputs whatever the stem type.
    """
    g, n = genotype, n_cells
    s0 = s1 = True
    for i in range(n):
        red = i > 0 and i in (n // 3, 2 * n // 3)
        edges, concat = (g.reduce, g.reduce_concat) if red else (g.normal, g.normal_concat)
        states = [s0, s1]
        for j in range(len(edges) // 2):
            states.append(any(op != "none" and states[idx] for op, idx in edges[2 * j:2 * j + 2]))
        s0, s1 = s1, any(states[c] for c in concat)
    return s1


def _check(split: str, index: Any) -> None:
    if split not in SPLITS:
        raise GhnError(f"unknown DeepNets-1M split {split!r}; expected one of {', '.join(SPLITS)}")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise GhnError(f"net index must be a non-negative integer, got {index!r}")
    if split == "predefined" and index > 1:
        raise GhnError(f"the predefined split has 2 nets (0: resnet50, 1: ViT), got index {index}")


def _predefined(index: int) -> NetSpec:
    if index == 0:  # torchvision ResNet-50 (ppuda loader); built from the zoo, not from cells
        return NetSpec(genotype=None, arch="resnet50", split="predefined", index=0)
    # ppuda loader: Network(C=128, genotype=ViT, n_cells=12, glob_avg=True, preproc=False, C_mult=1), other
    # args at Network defaults (ks 3, stem 0, no stem pool, a single classifier layer).
    return NetSpec(genotype=VIT, n_cells=12, ks=3, C_mult=1, preproc=False, glob_avg=True, norm="bnorm",
                   stem_type=0, stem_pool=False, fc_layers=1, fc_dim=256, C=128, split="predefined", index=1)


def _draw(rng: np.random.Generator, r: _Rules) -> Tuple[Optional[Dict[str, Any]], str]:
    """One iteration of the generator's loop: (net args, '') if accepted, else (None, reject reason)."""
    layers = int(rng.integers(r.min_layers, r.max_layers + 1))
    deep = int(rng.choice(r.deep_layers))
    steps = int(rng.integers(r.min_steps, (r.max_steps if layers <= deep else r.medium_steps) + 1))
    only_pool = bool(rng.random() > 0.5)
    drop_concat = bool(rng.random() > 0.5) if steps > 1 else False
    g = sample_genotype(rng, steps=steps, only_pool=only_pool, drop_concat=drop_concat,
                        allow_none=steps > 1, allow_transformer=True)
    ks = int(rng.choice([3, 5, 7]))
    ops = g.all_ops
    is_vit, is_cse = "msa" in ops, "cse" in ops
    is_conv = any("conv" in op for op in ops)  # any conv-like op (sep/dil/conv_*)
    if is_cse and not is_conv:
        return None, "cse_without_conv"
    if any(sum(op == "cse" for op, _ in cell) > 1 for cell in (g.normal, g.reduce)):
        return None, "cse2"  # several SE ops per cell made GHN training diverge
    if any(sum(op in ("conv_5x5", "conv_7x7") for op, _ in cell) > 1 for cell in (g.normal, g.reduce)):
        return None, "conv_large"  # memory
    if not (is_cse or is_vit or is_conv):
        return None, "no_learnable_op"
    C_mult = int(rng.choice([1, 2]))
    preproc = True if (steps > 1 or C_mult > 1) else bool(not is_vit or rng.random() > 0.8)
    glob_avg = bool(is_vit or layers > deep or rng.random() > 0.1)
    if r.bnfree:
        norm = None
    elif layers <= r.min_layers + 1 and steps <= r.medium_steps:
        norm = ("bnorm", None)[int(rng.integers(2))]
    else:
        norm = "bnorm"
    stem_type = int(rng.integers(2))
    stem_pool = bool(stem_type == 0 and rng.random() > 0.5)
    fc_layers = int(rng.integers(1, 3))
    args = dict(genotype=g, n_cells=layers, ks=ks, C_mult=C_mult, preproc=preproc, glob_avg=glob_avg, norm=norm,
                stem_type=stem_type, stem_pool=stem_pool, fc_layers=fc_layers, fc_dim=256)
    num_params = {}
    for name, imagenet in (("cifar10", False), ("imagenet", True)):
        num_params[name] = count_params(args, imagenet, C=32, num_classes=10)
        if num_params[name] > r.max_params:
            return None, f"too_large_{name}"
    if not is_connected(g, layers):
        return None, "graph_failed"
    args["num_params"] = num_params
    return args, ""


def _train_hparams(rng: np.random.Generator, a: Mapping[str, Any]) -> Dict[str, int]:
    """§4.2: imagenet_stride, C and fc_dim drawn per sample (ghn3 DeepNets1MDDP, wider_nets=True)."""
    g: Genotype = a["genotype"]
    P = a["num_params"]["cifar10"] / 1e6
    dense = any(op in ("conv_5x5", "conv_7x7") for op in g.all_ops)
    n_cells = a["n_cells"]
    stride = 4
    if a["glob_avg"] and a["stem_type"] == 0 and a["stem_pool"] and not (P > 0.2 or n_cells > 8 or dense):
        stride = int(rng.choice([2, 4]))  # smaller stride only for small nets with a pooled stem
    fc = FC_DIMS[int(rng.integers(4))]
    if P > 2.0 or not a["glob_avg"] or dense or n_cells > 14:
        C = NUM_CH[0]
    elif P > 0.4 or n_cells > 10:
        C = NUM_CH[int(rng.integers(4))]
    elif P > 0.2 or n_cells > 8:
        C = NUM_CH[int(rng.integers(5))]
    else:
        C = NUM_CH[int(rng.integers(len(NUM_CH)))]
        if C <= 64:
            fc = FC_DIMS[int(rng.integers(len(FC_DIMS)))]
    return dict(imagenet_stride=stride, C=C, fc_dim=fc)


def sample_with_info(split: str, index: int, *, train_hparams: bool = True) -> Tuple[NetSpec, Dict[str, Any]]:
    """`sample` plus {'num_params': {cifar10, imagenet} at C=32/10 classes, 'attempts', 'rejected': {reason: n}}."""
    _check(split, index)
    if split == "predefined":
        return _predefined(int(index)), {}
    rng = np.random.default_rng(np.random.SeedSequence([_SEEDS[split], int(index)]))
    rules, rejected = _RULES[split], {}
    for attempt in range(_MAX_ATTEMPTS):
        args, reason = _draw(rng, rules)
        if args is not None:
            break
        rejected[reason] = rejected.get(reason, 0) + 1
    else:  # practically unreachable: ~17% of draws are rejected
        raise GhnError(f"no valid architecture after {_MAX_ATTEMPTS} attempts ({split}, {index})")
    num_params = args.pop("num_params")
    spec = NetSpec(split=split, index=int(index), wide=split == "wide", C=32, **args)
    # ghn3 draws these only for the training split (DeepNets1MDDP.is_train); eval splits keep C=32 etc.
    if train_hparams and split == "train":
        spec = spec.with_(**_train_hparams(rng, {**args, "num_params": num_params}))
    return spec, {"num_params": num_params, "attempts": attempt + 1, "rejected": rejected}


def sample(split: str, index: int, *, train_hparams: bool = True) -> NetSpec:
    """Net `index` of DeepNets-1M-style `split`; deterministic and independent of any other index."""
    return sample_with_info(split, index, train_hparams=train_hparams)[0]


def sample_batch(split: str, indices: Iterable[int], *, train_hparams: bool = True) -> List[NetSpec]:
    return [sample(split, int(i), train_hparams=train_hparams) for i in indices]
