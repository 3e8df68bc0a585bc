"""The architecture stream: which DeepNets-1M networks each training step predicts (§4.3).

The meta-batch of step s is a pure function of (seed, s): a restarted run sees exactly the
architectures it would have seen, on every process, with nothing to checkpoint. Like the
reference loader, a meta-batch whose graphs hold more than `int(2200 / 8 * max(8, m))`
nodes is dropped (here: redrawn, so that every step trains).
"""
import dataclasses
import functools
from typing import List

import ml_collections
import numpy as np

from ghn_jax.deepnets import arch_graph, net_plan, sample
from ghn_jax.deepnets.meta import MetaNet
from ghn_jax.deepnets.sampler import NetSpec

SPLIT_SIZE = 1_000_000


def node_cap(m: int) -> int:
    return int(2200 / 8 * max(8, m))


def indices(cfg: ml_collections.ConfigDict, seed: int, step: int, attempt: int = 0) -> List[int]:
    """The DeepNets indices of one meta-batch. cfg.pool > 0 cycles through the first `pool`
    networks of a seeded permutation (a bounded architecture set, e.g. for smoke runs)."""
    rng = np.random.default_rng([seed, step, attempt])
    if cfg.pool:
        base = pool_indices(cfg, seed)
        return [int(i) for i in rng.choice(base, cfg.meta_batch, replace=cfg.meta_batch > cfg.pool)]
    return [int(i) for i in rng.integers(0, SPLIT_SIZE, cfg.meta_batch)]


def pool_indices(cfg: ml_collections.ConfigDict, seed: int) -> np.ndarray:
    """The `cfg.pool` networks a bounded stream cycles through."""
    return np.random.default_rng([seed]).permutation(min(cfg.pool * 4, SPLIT_SIZE))[: cfg.pool]


def check_image_size(cfg: ml_collections.ConfigDict, seed: int, image_size: int) -> None:
    """Fails at start-up, not hours in, when some network of the stream cannot take
    `image_size` px images: attention (msa) networks have a fixed positional encoding (32 px,
    or 224 with deepnets.imagenet). A bounded pool is checked network by network; the whole
    split holds such networks, so it needs the standard size."""
    from ghn_jax.deepnets.network import check_vit_input, input_size
    from ghn_jax.errors import GhnError
    size = int(image_size)
    if not cfg.pool:
        want = input_size(cfg.imagenet)
        if size != want:
            raise GhnError(f"data.image_size={size}: DeepNets-1M {cfg.split} networks with attention cells (msa) "
                           f"take {want}x{want} images only (fixed positional encoding); use data.image_size={want}, "
                           f"or a bounded deepnets.pool without such networks")
        return
    for i in pool_indices(cfg, seed):
        plan = net_plan(spec(cfg, int(i), 10), cfg.imagenet)
        if plan.stem_kind == "vit":
            try:
                check_vit_input(plan, size, size)
            except GhnError as e:
                raise GhnError(f"data.image_size={size}: DeepNets-1M {cfg.split} network {int(i)} of the pool: "
                               f"{e}") from None


def spec(cfg: ml_collections.ConfigDict, index: int, num_classes: int) -> NetSpec:
    s = sample(cfg.split, index)
    over = {"num_classes": num_classes}
    for field in ("C", "n_cells", "fc_dim"):
        cap = cfg.get(f"max_{field}")
        if cap:
            over[field] = min(getattr(s, field), cap)
    return dataclasses.replace(s, **over)


@functools.lru_cache(maxsize=512)
def _net(s: NetSpec, imagenet: bool) -> MetaNet:
    """Traced once per network: with a bounded pool the same networks come back every few steps."""
    return MetaNet(net_plan(s, imagenet), arch_graph(s, imagenet))


def meta_batch(cfg: ml_collections.ConfigDict, seed: int, step: int, num_classes: int) -> List[MetaNet]:
    """The step's networks (op plans and graphs), obeying the node cap."""
    imagenet = cfg.imagenet
    for attempt in range(100):
        specs = [spec(cfg, i, num_classes) for i in indices(cfg, seed, step, attempt)]
        nets = [_net(s, imagenet) for s in specs]
        if cfg.meta_batch == 1 or sum(n.graph.n_nodes for n in nets) <= node_cap(cfg.meta_batch):
            return nets
    raise RuntimeError(f"no meta-batch under the node cap at step {step}")


def default_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        split="train", meta_batch=8, imagenet=True, pool=0, max_C=0, max_n_cells=0, max_fc_dim=0))
