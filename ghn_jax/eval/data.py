"""data_cfg construction for evaluation and fine-tuning (on top of ghn_jax.data)."""
from typing import Optional

import ml_collections

from ghn_jax import data
from ghn_jax.data import sources, transforms


def data_config(dataset, data_dir: Optional[str] = None, image_size: Optional[int] = None,
                batch_size: Optional[int] = None, workers: Optional[int] = None) -> ml_collections.ConfigDict:
    """A data_cfg for evaluating / fine-tuning target networks on `dataset`.

    Unlike GHN training (ghn_jax.data.get_config), the splits are the dataset's own train
    and test/validation splits (the reference fine-tunes on the full train set and reports
    the official validation set) and colour jitter is off (§5.2). `dataset` may also be a
    data_cfg already, whose fields are kept unless given here.
    """
    if isinstance(dataset, str):
        cfg = data.get_config(dataset)
        d = sources.defaults(dataset)
        cfg.train_split, cfg.eval_split = d.train_split, d.eval_split
        cfg.colour_jitter = False
    else:
        cfg = ml_collections.ConfigDict(dataset.to_dict() if hasattr(dataset, "to_dict") else dict(dataset))
    if data_dir is not None:
        cfg.data_dir = data_dir
    if image_size is not None:
        cfg.image_size = int(image_size)
    if batch_size is not None:
        cfg.batch_size = int(batch_size)
    if workers is not None:
        cfg.num_workers = int(workers)
    return cfg


def kind(cfg) -> str:
    return cfg.get("transform", None) or sources.defaults(cfg.name).kind


def dataset_image_size(cfg) -> int:
    return int(cfg.get("image_size", None) or sources.defaults(cfg.name).image_size)


def eval_size(cfg, image_size: int) -> int:
    """Side of the evaluation images for a requested size (ImageNet: CenterCrop(max(S, 224)))."""
    return int(transforms.eval_transform(kind(cfg), int(image_size)).output_size)


def with_size(cfg, image_size: int) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict(cfg.to_dict())
    c.image_size = int(image_size)
    return c


def num_classes(cfg) -> int:
    return int(sources.num_classes(cfg.name, cfg.get("data_dir", None)))
