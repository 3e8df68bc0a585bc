"""The GHN optimiser against PyTorch's (the reference trainer's): clip_grad_norm_(5), AdamW,
and LambdaLR cosine-warmup stepped once per epoch (§4.6)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ghn_jax.train import optim

torch = pytest.importorskip("torch")


def _reference_factor(e, epochs, warmup=5, init_ratio=1e-5 / 4e-4):
    # the reference's LambdaLR factor, written from §4.6
    if e < warmup - 1:
        return float(np.linspace(init_ratio, 1, warmup)[e])
    return max(0.0, 0.5 * (1 + math.cos(math.pi * (e - warmup) / (epochs - warmup))))


def test_schedule_factors_match_the_reference():
    got = [float(optim.epoch_factor("cosine-warmup", e, 75)) for e in range(75)]
    want = [_reference_factor(e, 75) for e in range(75)]
    # float32 arithmetic: values in [0, 1] carry ~6e-8 absolute rounding
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert got[:4] == pytest.approx([0.025, 0.26875, 0.5125, 0.75625])


def test_steps_equal_torch_adamw_with_clipping_and_per_epoch_schedule():
    cfg = optim.default_config()
    cfg.epochs, cfg.clip = 8, 5.0
    steps_per_epoch, n_steps = 3, 20
    rng = np.random.default_rng(0)
    shapes = {"a": (7, 5), "b": (11,), "c": (3, 2, 2)}
    p0 = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    grads = [{k: (rng.standard_normal(s) * (20.0 if i % 4 == 0 else 0.05)).astype(np.float32)
              for k, s in shapes.items()} for i in range(n_steps)]    # some steps exceed the clip norm

    tp = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in p0.items()}
    opt = torch.optim.AdamW(list(tp.values()), lr=cfg.lr, betas=(cfg.b1, cfg.b2), eps=cfg.eps, weight_decay=cfg.wd)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: _reference_factor(e, cfg.epochs))
    tx = optim.make(cfg)
    lr_fn = optim.schedule(cfg, steps_per_epoch)
    params = jax.tree_util.tree_map(jnp.asarray, p0)
    state = tx.init(params)

    @jax.jit
    def step(params, state, g, i):
        u, state = tx.update(g, optim.set_lr(state, lr_fn(i)), params)
        return jax.tree_util.tree_map(lambda p, d: p + d, params, u), state

    for i, g in enumerate(grads):
        for k, p in tp.items():
            p.grad = torch.tensor(g[k])
        torch.nn.utils.clip_grad_norm_(list(tp.values()), cfg.clip)
        opt.step()
        if (i + 1) % steps_per_epoch == 0:
            sched.step()
        params, state = step(params, state, g, i)
        for k in shapes:
            np.testing.assert_allclose(np.asarray(params[k]), tp[k].detach().numpy(), rtol=2e-6, atol=2e-7,
                                       err_msg=f"step {i} {k}")


def test_unknown_schedule_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown schedule"):
        optim.epoch_factor("linear", 0, 10)
