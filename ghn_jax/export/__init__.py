from ghn_jax.export.torch_params import flax_to_torch, torch_name, torch_to_flax

__all__ = ["flax_to_torch", "torch_to_flax", "torch_name"]
