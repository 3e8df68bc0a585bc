"""ghn_jax: GHN-3 graph hypernetworks in JAX/Flax.

Data flows one way: architecture (zoo name or Flax module) -> graph -> GHN -> params.
"""
from ghn_jax import _compat  # noqa: F401  (must run before jraph is imported)
from ghn_jax.errors import GhnError

__version__ = "0.1.0"
__all__ = ["GhnError", "__version__"]
