"""A data_cfg with the reference's defaults for a dataset (override fields as needed)."""
import ml_collections

from ghn_jax.data import sources


def get_config(name: str = "imagenet2012") -> ml_collections.ConfigDict:
    """data_cfg for ghn_jax.data.pipeline: §4.4 defaults (GHN training on ImageNet: batch 128,
    ColorJitter on, train minus 50 images/class, evaluation on those)."""
    d = sources.defaults(name)
    c = ml_collections.ConfigDict()
    c.name = name
    c.data_dir = ml_collections.config_dict.placeholder(str)   # TFDS data_dir (path or gs://...); None = TFDS default
    c.train_split = "train_minus_val50" if name == "imagenet2012" else d.train_split
    c.eval_split = "val50" if name == "imagenet2012" else d.eval_split
    c.image_size = d.image_size
    c.batch_size = 128                 # global
    c.colour_jitter = d.kind == "imagenet"
    c.num_workers = 8 if name == "imagenet2012" else 0
    c.prefetch = 2
    return c
