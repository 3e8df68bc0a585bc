"""The GHN optimiser (§4.6): gradient clipping, then AdamW with the reference's schedule.

PyTorch's AdamW and optax.adamw compute the same update (decoupled decay p -= lr*wd*p,
bias-corrected moments, eps outside the square root), and `clip_grad_norm_` is
`optax.clip_by_global_norm`. The reference steps its LambdaLR once per *epoch*: the
learning rate is piecewise constant within an epoch, which `schedule` reproduces.
"""
import math

import jax.numpy as jnp
import ml_collections
import optax


def epoch_factor(kind: str, epoch, epochs: int, warmup: int = 5, init_lr_ratio: float = 1e-5 / 4e-4):
    """The LR multiplier at `epoch` (int or traced array).

    cosine-warmup: linspace(init_lr_ratio, 1, warmup)[e] for e < warmup - 1, else
    max(0, (1 + cos(pi (e - warmup) / (epochs - warmup))) / 2) (e = warmup - 1 gives a
    progress of -1/(E - warmup), as in the reference). cosine: (1 + cos(pi e / E)) / 2.
    """
    e = jnp.asarray(epoch, jnp.float32)
    if kind == "constant":
        return jnp.ones_like(e)
    if kind == "cosine":
        return 0.5 * (1.0 + jnp.cos(math.pi * e / epochs))
    if kind == "cosine-warmup":
        ramp = init_lr_ratio + (1.0 - init_lr_ratio) * e / max(warmup - 1, 1)
        cos = jnp.maximum(0.0, 0.5 * (1.0 + jnp.cos(math.pi * (e - warmup) / max(epochs - warmup, 1))))
        return jnp.where(e < warmup - 1, ramp, cos)
    raise ValueError(f"unknown schedule '{kind}' (constant, cosine, cosine-warmup)")


def schedule(cfg: ml_collections.ConfigDict, steps_per_epoch: int) -> optax.Schedule:
    """step -> learning rate. cfg: lr, schedule, epochs, warmup_epochs, init_lr, per_epoch."""
    ratio = cfg.init_lr / cfg.lr

    def fn(step):
        e = step // steps_per_epoch if cfg.per_epoch else step / steps_per_epoch
        return cfg.lr * epoch_factor(cfg.schedule, e, cfg.epochs, cfg.warmup_epochs, ratio)
    return fn


def make(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """clip_by_global_norm(cfg.clip) then AdamW(b1, b2, eps, weight_decay) on every parameter.

    The learning rate is a hyper-parameter of the state (`set_lr`), set from the global step
    before each update: a skipped (NaN) step then does not shift the schedule, as in the
    reference, whose scheduler follows epochs, not applied updates.
    """
    parts = [optax.clip_by_global_norm(cfg.clip)] if cfg.clip and cfg.clip > 0 else []
    parts.append(optax.inject_hyperparams(optax.adamw)(learning_rate=cfg.lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                                                       weight_decay=cfg.wd))
    return optax.chain(*parts)


def set_lr(opt_state, lr):
    """opt_state of `make` with its learning rate replaced (inside jit)."""
    *rest, adam = opt_state
    hp = dict(adam.hyperparams)
    hp["learning_rate"] = jnp.asarray(lr, hp["learning_rate"].dtype)
    return (*rest, adam._replace(hyperparams=hp))


def default_config() -> ml_collections.ConfigDict:
    """The released recipe: AdamW lr 4e-4, wd 1e-2, cosine-warmup stepped per epoch, clip 5."""
    return ml_collections.ConfigDict(dict(
        lr=4e-4, wd=1e-2, b1=0.9, b2=0.999, eps=1e-8, clip=5.0,
        schedule="cosine-warmup", epochs=75, warmup_epochs=5, init_lr=1e-5, per_epoch=True))
