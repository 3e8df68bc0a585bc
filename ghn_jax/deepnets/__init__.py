"""DeepNets-1M: the architecture space GHN-3 trains on (design/ghn3-reference.md §4).

    spec = sample('train', 123)                    # deterministic, no download
    net = Network(spec)                            # Flax module, NHWC 224 px (imagenet=False: 32 px)
    graph = arch_graph(spec)                       # GHN graph, from the same tracer as the zoo
    logits, tape = Executor().forward(net_plan(spec), params, images)   # op-by-op kernels
"""
from ghn_jax.deepnets.sampler import SPLITS, NetSpec, sample, sample_batch
from ghn_jax.deepnets.network import Network, input_size, net_plan
from ghn_jax.deepnets.executor import Executor, CompileCounter


def arch_graph(spec, imagenet: bool = True):
    """The ArchGraph of a DeepNets network (traced from its Flax `Network`)."""
    from ghn_jax.graph import build_graph
    size = input_size(imagenet)
    return build_graph(Network(spec, imagenet), (2, size, size, 3),
                       name=f"deepnets/{getattr(spec, 'split', '')}/{getattr(spec, 'index', '')}")


__all__ = ["SPLITS", "NetSpec", "sample", "sample_batch", "Network", "net_plan", "Executor",
           "CompileCounter", "arch_graph"]
