"""Analytic parameter count of a DeepNets-1M network, exactly as ppuda's `Network` would build it.

Pure Python on purpose: the sampler calls it twice per candidate (CIFAR and ImageNet versions) inside its
rejection loop, so building modules (torch or flax) would dominate sampling time.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Union

from ghn_jax.deepnets.genotypes import Genotype, from_dict, parse_op


def _bn(norm: Optional[str], c: int) -> int:
    return 2 * c if norm else 0  # affine BatchNorm; norm=None -> Identity


def _factorized_reduce(c_in: int, c_out: int, norm: Optional[str]) -> int:
    return 2 * c_in * (c_out // 2) + _bn(norm, c_out)


def _op_params(name: str, c_in: int, c_out: int, stride: int, norm: Optional[str]) -> int:
    kind, k = parse_op(name)
    if kind in ("none", "max_pool", "avg_pool"):
        return 0
    if kind == "skip_connect":
        return 0 if stride == 1 else _factorized_reduce(c_in, c_out, norm)
    if kind == "conv":
        return c_in * c_out * k * k + _bn(norm, c_out)
    if kind == "conv2":  # (1 x k) conv i->i then (k x 1) conv i->o
        return c_in * c_in * k + c_in * c_out * k + _bn(norm, c_out)
    if kind == "sep_conv":  # two (depthwise k x k + pointwise) blocks
        return (c_in * k * k + c_in * c_in + _bn(norm, c_in)) + (c_in * k * k + c_in * c_out + _bn(norm, c_out))
    if kind == "dil_conv":
        return c_in * k * k + c_in * c_out + _bn(norm, c_out)
    if kind == "msa":  # 8 heads, head dim c_in // 8; qkv without bias; two LayerNorms; MLP dim -> c_out -> dim
        inner = (c_in // 8) * 8
        return (c_in * inner * 3 + inner * c_out + c_out + 4 * c_in
                + c_in * c_out + c_out + c_out * c_in + c_in)
    if kind == "cse":  # squeeze-excite, reduction 2, both Linear layers with bias
        r = c_in // 2
        return c_in * r + r + r * c_in + c_in
    raise ValueError(f"unknown op {name!r}")


def _get(fields: Any, key: str, default: Any = None) -> Any:
    if isinstance(fields, Mapping):
        return fields.get(key, default)
    return getattr(fields, key, default)


def count_params(spec_or_fields: Union[Any, Mapping[str, Any]], imagenet: bool, C: Optional[int] = None,
                 num_classes: Optional[int] = None) -> int:
    """Number of parameters of ppuda `Network(C, num_classes, is_imagenet_input=imagenet, **net_args)`.

    `spec_or_fields` is a NetSpec or a dict of generator net args (genotype as Genotype or JSON dict).
    C / num_classes default to the spec's values, else to the generator's 32 / 10.
    """
    f = spec_or_fields
    g = _get(f, "genotype")
    if _get(f, "arch") is not None or g is None:
        raise ValueError("count_params supports only DeepNets-1M cell networks, not named architectures")
    if not isinstance(g, Genotype):
        g = from_dict(g)
    C = int(C if C is not None else _get(f, "C", 32) or 32)
    num_classes = int(num_classes if num_classes is not None else _get(f, "num_classes", 10) or 10)
    n_cells, ks = int(_get(f, "n_cells")), int(_get(f, "ks", 3))
    norm, preproc = _get(f, "norm"), bool(_get(f, "preproc", True))
    C_mult, stem_type, stem_pool = int(_get(f, "C_mult", 1)), int(_get(f, "stem_type", 0)), bool(_get(f, "stem_pool"))
    fc_layers, fc_dim, glob_avg = int(_get(f, "fc_layers", 1)), int(_get(f, "fc_dim", 0)), bool(_get(f, "glob_avg"))
    is_vit = "msa" in g.all_ops
    steps = len(g.normal_concat)  # ppuda's "steps" here = number of concatenated states

    n = 0
    c_pp = c_p = c_cur = C
    if is_vit:  # patchify conv (16x16 ImageNet, 3x3 CIFAR) + learned positional encoding
        k = 16 if imagenet else 3
        n += 3 * C * k * k + C * (14 if imagenet else 11) ** 2
    elif stem_type == 0:
        c_stem = C * 3 if (preproc and not imagenet) else C
        n += 3 * c_stem * ks * ks + _bn(norm, c_stem)
        c_pp = c_p = c_stem
    else:  # DARTS ImageNet stem: stem0 (two convs) + stem1 (one conv)
        h = C // 2
        n += 3 * h * ks * ks + _bn(norm, h) + h * C * 9 + _bn(norm, C) + C * C * 9 + _bn(norm, C)

    def is_red(i: int) -> bool:
        return i > 0 and i in (n_cells // 3, 2 * n_cells // 3)

    red_prev = stem_type == 1
    for i in range(n_cells):
        red = is_red(i)
        if red:
            c_cur *= C_mult
        c_out = c_cur * (C_mult if (is_red(i + 1) and steps == 1 and not preproc) else 1)
        c_in = c_cur if preproc else c_p
        if preproc:
            n += (_factorized_reduce(c_pp, c_out, norm) if (red_prev and not is_vit)
                  else c_pp * c_out + _bn(norm, c_out))
            n += c_p * c_out + _bn(norm, c_out)
        edges, concat = (g.reduce, g.reduce_concat) if red else (g.normal, g.normal_concat)
        for name, idx in edges:
            stride = 2 if (red and idx < 2 and not is_vit) else 1
            n += _op_params(name, c_in if idx <= 1 else c_out, c_out, stride, norm)
        red_prev = red
        c_pp, c_p = c_p, len(concat) * c_cur

    if not glob_avg:  # VGG-style head flattens the last feature map
        s = (7 if imagenet else 4) if (stem_type == 1 or stem_pool) else (14 if imagenet else 8)
        c_p *= s * s
    dims = [c_p] + [fc_dim] * (fc_layers - 1) + [num_classes]
    n += sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))
    return int(n)
