"""DeepNets-1M: the architecture space GHN-3 trains on (design/ghn3-reference.md §4).

    spec = sample('train', 123)                    # deterministic, no download
    net = Network(spec)                            # Flax module, NHWC 224 px (imagenet=False: 32 px)
    graph = arch_graph(spec)                       # GHN graph: the zoo's tracer, replayed per op
    logits, tape = Executor().forward(net_plan(spec), params, images)   # op-by-op kernels
"""
from ghn_jax.deepnets.sampler import SPLITS, NetSpec, sample, sample_batch
from ghn_jax.deepnets.network import Network, input_size, net_plan
from ghn_jax.deepnets.executor import Executor, CompileCounter
from ghn_jax.deepnets.graph import arch_graph


__all__ = ["SPLITS", "NetSpec", "sample", "sample_batch", "Network", "input_size", "net_plan", "Executor",
           "CompileCounter", "arch_graph"]
