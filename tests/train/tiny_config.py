"""configs/smoke.py shrunk for tests: a tiny GHN, 2 small architectures, 8 images of 16 px."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "configs"))
import smoke  # noqa: E402


def get_config(arg=None):
    """arg 'fsdp': parameters and optimizer state sharded (the L/XL rule)."""
    c = smoke.get_config()
    if arg == "fsdp":
        c.sharding_rules = [(".*", "fsdp(axis='data')")]
    c.ghn.hid, c.ghn.layers, c.ghn.heads, c.ghn.max_shape = 16, 1, 2, (16, 16, 4, 4)
    c.data.batch_size = 8
    c.data.image_size = 16
    c.deepnets.pool = 2
    c.deepnets.max_C = 8
    c.deepnets.max_n_cells = 3
    c.deepnets.max_fc_dim = 16
    c.total_steps = 4
    c.steps_per_epoch = 2
    c.optim.epochs = 4
    c.checkpoint.every_steps = 1
    c.checkpoint.keep = 3
    c.log_every = 1
    c.progress = False
    c.tensorboard = False
    return c
