"""Shared helpers of `python -m ghn_jax.evaluate` and `python -m ghn_jax.finetune`.

models: architecture names -> Flax targets (small-image stems, size checks), GHN
prediction, BatchNorm batch-statistics mode, ppuda's init noise. metrics: top-k counts.
data: data_cfg for target networks. plots: accuracy bars and training curves. small: the
stem adaptations of ppuda's adjust_net.
"""
