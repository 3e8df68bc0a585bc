"""GHN-3 training: `python -m ghn_jax.train --config configs/X.py --workdir DIR` (see trainer.py)."""
