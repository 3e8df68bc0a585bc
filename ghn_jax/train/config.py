"""The trainer's full ConfigDict with every field (configs/*.py start from it).

The defaults are the reference recipe (design/ghn3-reference.md §4): a meta-batch of
DeepNets-1M train architectures per step, 128 images per step (ImageNet train minus 50
images per class, RandomResizedCrop 224 + flip + ColorJitter), AdamW lr 4e-4 wd 1e-2, cosine
with 5 warmup epochs stepped per epoch, clip 5, label smoothing 0.1, lambda 3e-5 on the
predicted parameters' norms, 75 epochs (9,619 steps each on ImageNet). The reference trained
on 4 GPUs for days; data.batch_size must divide by the device count.

Every field exists here so that `--config.a.b=value` overrides work on any config
(configs are locked: a misspelt field is an error, not a silent no-op).
"""
import os
from typing import Optional

import ml_collections

from ghn_jax.data import get_config as data_config
from ghn_jax.data.sources import defaults
from ghn_jax.train import archs, optim

# hid, layers, heads of the released sizes (design/ghn3-reference.md §3.1); max_shape (hid, hid, 16, 16)
SIZES = {"t": (64, 3, 8), "s": (128, 5, 16), "l": (256, 12, 16), "xl": (384, 24, 16)}


def base_config(size: str = "t", dataset: str = "imagenet2012") -> ml_collections.ConfigDict:
    hid, layers, heads = SIZES[size]
    data = data_config(dataset)
    c = ml_collections.ConfigDict()
    c.seed = 1111
    c.ghn = ml_collections.ConfigDict(dict(hid=hid, layers=layers, heads=heads, max_shape=(hid, hid, 16, 16),
                                           num_classes=defaults(dataset).num_classes, layernorm=True))
    c.data = data
    c.deepnets = archs.default_config()
    c.deepnets.imagenet = data.image_size >= 224
    # label smoothing 0.1 on ImageNet, none on CIFAR (§4.5)
    # bf16 GHN compute pays on TPUs/GPUs (float32 master weights); on CPU it is slower
    c.ghn_dtype = "float32"
    c.loss = ml_collections.ConfigDict(dict(label_smoothing=0.1 if dataset == "imagenet2012" else 0.0, lam=3e-5))
    c.optim = optim.default_config()
    c.total_steps = 0                    # 0: optim.epochs x steps_per_epoch
    c.steps_per_epoch = 0                # 0: ceil(train examples / data.batch_size), as the reference
    # 'data': every architecture runs on all devices in turn, images sharded over them (exactly
    # the one-device step). 'arch': architectures spread over processes, each running its
    # share on its local devices with the whole image batch, as the reference's DDP ranks do.
    c.parallel = "data"
    c.mesh = [("data", -1)]                # 'data' mode; 'arch' mode uses (processes, local devices)
    c.sharding_rules = [(".*", "replicate")]
    c.checkpoint = ml_collections.ConfigDict(dict(every_steps=1000, keep=3, async_save=True))
    c.log_every = 50
    c.compile_ahead = True               # compile the next step's kernels in a background thread
    c.tensorboard = True
    c.progress = True
    c.debug = ml_collections.ConfigDict(dict(nan_steps=()))   # steps whose images are made NaN (tests)
    c.max_nan_in_a_row = 20
    c.init_from = ""                     # a released GHN name or checkpoint path to start from
    c.trust_pickle = False               # needed when init_from is a PyTorch pickle
    c.compilation_cache_dir = ""         # persistent XLA cache (restarts compile nothing)
    # Compiled executor kernels and GHN training programs on disk (deepnets/kernel_store.py):
    # "default" = $GHN_JAX_KERNEL_CACHE or $GHN_JAX_CACHE/kernels, "" = off, else a local folder.
    c.kernel_store = "default"
    return c


def apply_kernel_store(config) -> Optional[str]:
    """Points the kernel store where `config.kernel_store` says; its folder (None: off)."""
    from ghn_jax.deepnets import kernel_store
    store = config.get("kernel_store", "default")
    if store != "default":
        kernel_store.set_directory(os.path.expanduser(store) if store else None)
    return kernel_store.directory()
