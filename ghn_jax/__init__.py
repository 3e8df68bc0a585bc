"""ghn_jax: GHN-3 graph hypernetworks in JAX/Flax.

Data flows one way: architecture (zoo name or Flax module) -> graph -> GHN -> params.
"""
from ghn_jax import _compat  # noqa: F401  (must run before jraph is imported)
from ghn_jax.errors import GhnError

__version__ = "0.1.0"
__all__ = ["GhnError", "from_pretrained", "__version__"]


def from_pretrained(name_or_path: str = "ghn3xlm16", trust_pickle: bool = False, **kwargs):
    """A released GHN (ghn3tm8, ghn3sm8, ghn3lm8, ghn3xlm16) or a checkpoint file.

        ghn = ghn_jax.from_pretrained('ghn3tm8', trust_pickle=True)
        variables = ghn('resnet50')          # or ghn(my_flax_model)
    """
    from ghn_jax.ghn.predictor import GHN
    return GHN.from_pretrained(name_or_path, trust_pickle=trust_pickle, **kwargs)
