"""Architecture graphs: trace a Flax model into the GHN-3 graph (ArchGraph)."""
import time
from typing import Optional, Sequence, Union

import flax.linen as nn

from ghn_jax.graph.graph import ArchGraph, assemble
from ghn_jax.graph.primitives import PRIMITIVES, PRIMITIVE_ID
from ghn_jax.graph.tracer import trace

__all__ = ["ArchGraph", "PRIMITIVES", "PRIMITIVE_ID", "build_graph", "trace"]


def build_graph(model: Union[str, nn.Module], input_shape: Optional[Sequence[int]] = None, *,
                num_classes: int = 1000, train: bool = True, name: str = "",
                call_kwargs=None, timings=None) -> ArchGraph:
    """The GHN-3 graph of a zoo architecture (by name) or of any Flax classifier.

    input_shape: NHWC, batch first. Defaults to (2, S, S, 3) with the zoo's image size S
    (224; 299 for inception_v3), or 224 for a user model. train=True traces torch's train
    mode as the reference does (auxiliary heads are part of the graph). `timings`, if
    given, receives seconds for 'jaxpr', 'rules', 'assembly' (ordering, SPD, metadata)
    and 'total'.
    """
    if isinstance(model, str):
        from ghn_jax import zoo
        entry = zoo.entry(model)
        name = name or entry.name
        model = entry.builder(num_classes=num_classes)
        size = entry.input_size
    else:
        name = name or type(model).__name__
        size = 224
    if input_shape is None:
        input_shape = (2, size, size, 3)
    t0 = time.perf_counter()
    result = trace(model, input_shape, train=train, call_kwargs=call_kwargs, timings=timings)
    t1 = time.perf_counter()
    graph = assemble(result, name)
    if timings is not None:
        timings["assembly"] = time.perf_counter() - t1
        timings["total"] = time.perf_counter() - t0
    return graph
