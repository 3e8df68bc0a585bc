"""Input pipeline: TFDS random-access sources, numpy/PIL transforms, grain iterators.

    from ghn_jax import data
    cfg = data.get_config("digits")            # ml_collections data_cfg
    it = data.train_iter(cfg, seed=0, process_index=0, process_count=1)
    batch = next(it)       # {'image': float32 (B, 32, 32, 3), 'label': int32 (B,)}
"""
from ghn_jax.data.config import get_config
from ghn_jax.data.pipeline import eval_batches, local_batch_size, steps_per_epoch, train_iter
from ghn_jax.data.sources import DEFAULTS, image_size, num_classes, num_examples, source
from ghn_jax.data.transforms import eval_transform, train_transform

__all__ = ["get_config", "train_iter", "eval_batches", "steps_per_epoch", "local_batch_size",
           "source", "num_classes", "num_examples", "image_size", "DEFAULTS",
           "train_transform", "eval_transform"]
