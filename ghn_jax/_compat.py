"""Compatibility shims, applied once on `import ghn_jax`.

jraph 0.0.6.dev0 (archived upstream) still calls `jax.tree_map` / `jax.tree_leaves`,
which current JAX removed. They are aliased here, in one place, before jraph is used.
"""
import jax

for _name, _fn in (
    ("tree_map", jax.tree_util.tree_map),
    ("tree_leaves", jax.tree_util.tree_leaves),
    ("tree_flatten", jax.tree_util.tree_flatten),
    ("tree_unflatten", jax.tree_util.tree_unflatten),
    ("tree_structure", jax.tree_util.tree_structure),
):
    if not hasattr(jax, _name):
        setattr(jax, _name, _fn)
