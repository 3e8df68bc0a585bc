"""The GHN-3 node vocabulary: the only place that knows primitive ids.

The order is `PRIMITIVES_DEEPNETS1M` of the reference (ppuda `deepnets1m/genotypes.py`);
the id is the row of the GHN's op embedding, so it must never change.
"""
from typing import Dict, Tuple

PRIMITIVES: Tuple[str, ...] = (
    "max_pool",   # 0  pooling with a kernel (max)
    "avg_pool",   # 1  pooling with a kernel (average)
    "sep_conv",   # 2  weight of a grouped/depthwise conv, dilation 1
    "dil_conv",   # 3  weight of a grouped/depthwise conv with dilation > 1
    "conv",       # 4  weight of a dense conv, a linear layer, or a packed qkv projection
    "msa",        # 5  self-attention core (softmax); no parameters
    "cse",        # 6  channel squeeze-excitation gating multiply; no parameters
    "sum",        # 7  element-wise add of >= 2 graph tensors
    "concat",     # 8  concatenation of >= 2 graph tensors
    "input",      # 9  the single input node
    "bias",       # 10 bias vector of conv / linear / qkv projection
    "bn",         # 11 batch norm (its weight; the bias is predicted from the same node)
    "ln",         # 12 layer norm (idem)
    "pos_enc",    # 13 positional embedding / embedding table (a source node)
    "glob_avg",   # 14 global average pooling
)

PRIMITIVE_ID: Dict[str, int] = {name: i for i, name in enumerate(PRIMITIVES)}
NUM_PRIMITIVES = len(PRIMITIVES)

# Node kinds that hold a parameter tensor of the target model.
PARAM_PRIMITIVES = frozenset({"sep_conv", "dil_conv", "conv", "bias", "bn", "ln", "pos_enc"})
# Node kinds whose `shape` is a pooling kernel (1, 1, kh, kw) rather than a parameter.
POOL_PRIMITIVES = frozenset({"max_pool", "avg_pool"})


def primitive_id(name: str) -> int:
    """Id of a primitive name; KeyError for anything outside the vocabulary."""
    return PRIMITIVE_ID[name]
