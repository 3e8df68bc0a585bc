"""XLA compiler options for the programs this package compiles often (docs/deepnets.md,
"Compile options").

On CPU, XLA's compile time matters as much as run time: a cold `predict` compiles one GHN
program, and training on a stream of new architectures compiles op kernels all along.
Measured on the project's 2-core CPU with the pinned jax 0.10.2 (setup.py):

* `xla_cpu_use_fusion_emitters=False` (XLA:CPU's elemental emitters instead of its MLIR
  fusion emitters) compiles small programs 2-3x faster, and their code runs as fast;
* backend optimisation level 1 compiles ~1.6x faster than the default (3), and training
  kernels run as fast within noise; level 0 compiles faster still but runs elementwise code
  (batch norm, parameter shaping) ~2x slower;
* `xla_cpu_parallel_codegen_split_count=1` emits one object file per program instead of
  XLA:CPU's default split into several (for parallel LLVM codegen, which small programs do
  not need): the process then holds ~7 memory mappings per program instead of ~42 (~57 for
  a program loaded from the kernel store), and compiles are no slower. Training meets
  thousands of kernels, and the mappings are what bounds how many stay loaded
  (`Executor.maybe_evict`, Linux's `vm.max_map_count`).

GPU and TPU get XLA's defaults (None). The options are DebugOptions fields of the pinned
jaxlib; tests/test_compile_options.py fails if an upgrade drops one.
"""
from typing import Any, Dict, Optional

import jax

# Programs that run many times: training kernels, the GHN's training programs.
OPTIMISED = {"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False,
             "xla_cpu_parallel_codegen_split_count": 1}
# Cheapest compile: programs that run once, or whose time is in library calls (matmuls,
# convolutions), such as a cold predict's GHN forward.
QUICK = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False,
         "xla_cpu_parallel_codegen_split_count": 1}


def optimised() -> Optional[Dict[str, Any]]:
    return dict(OPTIMISED) if jax.default_backend() == "cpu" else None


def quick() -> Optional[Dict[str, Any]]:
    return dict(QUICK) if jax.default_backend() == "cpu" else None
