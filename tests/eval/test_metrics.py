"""Accuracy counting, the fine-tuning optimiser and schedules, ppuda's init noise: against
hand-computed values and torch."""
import numpy as np
import jax.numpy as jnp
import pytest

from ghn_jax.eval.metrics import Accuracy, mean_std, topk_correct

LOGITS = np.array([[0.1, 0.9, 0.3, 0.2, 0.0, -1.0],    # label 1: rank 1
                   [5.0, 4.0, 3.0, 2.0, 1.0, 0.0],     # label 4: rank 5
                   [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],     # label 0: rank 6
                   [1.0, 3.0, 2.0, 0.0, 0.5, 0.2]],    # label 2: rank 2
                  np.float32)
LABELS = np.array([1, 4, 0, 2], np.int32)


def test_topk_hand_computed():
    np.testing.assert_array_equal(topk_correct(jnp.asarray(LOGITS), jnp.asarray(LABELS), (1, 5)), [1, 3])
    np.testing.assert_array_equal(topk_correct(jnp.asarray(LOGITS), jnp.asarray(LABELS), (1, 2, 6)), [1, 2, 4])
    mask = jnp.asarray([True, True, True, False])      # a padding row never counts
    np.testing.assert_array_equal(topk_correct(jnp.asarray(LOGITS), jnp.asarray(LABELS), (1, 5), mask), [1, 2])
    # fewer classes than k: top-5 of 3 classes is always right (top-1: rows 1 and 3)
    np.testing.assert_array_equal(topk_correct(jnp.asarray(LOGITS[:, :3]), jnp.asarray([2, 0, 0, 1]), (1, 5)), [2, 4])


def test_topk_matches_ppuda_accuracy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((50, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 50)
    # ppuda.utils.darts_utils.accuracy
    _, pred = torch.from_numpy(logits).topk(5, 1, True, True)
    correct = pred.t().eq(torch.from_numpy(labels).view(1, -1).expand_as(pred.t()))
    ref = [float(correct[:k].reshape(-1).float().sum()) for k in (1, 5)]
    np.testing.assert_array_equal(topk_correct(jnp.asarray(logits), jnp.asarray(labels, np.int32)), ref)


def test_accuracy_is_sample_weighted():
    acc = Accuracy()
    acc.update([64, 64], 64)        # batch of 64, all right
    acc.update([0, 3], 3)           # last batch of 3: top-1 all wrong
    r = acc.result()
    assert r["n_images"] == 67
    assert r["top1"] == pytest.approx(100 * 64 / 67) and r["top5"] == pytest.approx(100.0)
    assert mean_std([10.0, 20.0, float("nan")]) == (15.0, 5.0)


def test_schedules():
    from ghn_jax.finetune import default_milestones, lr_factor
    assert default_milestones(90) == [30, 60]
    assert [lr_factor("mstep", e, 90, [30, 60]) for e in (0, 29, 30, 59, 60, 89)] == \
        pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    assert [lr_factor("cosine", e, 4) for e in range(4)] == pytest.approx([1, 0.853553, 0.5, 0.146447], abs=1e-6)


def test_optimizer_matches_torch_sgd():
    """clip_grad_norm_(5) + SGD(momentum 0.9, weight_decay) + per-epoch cosine, as the reference's Trainer."""
    torch = pytest.importorskip("torch")
    import jax
    import optax
    from ghn_jax.finetune import Hyper, _optimizer, lr_factor
    rng = np.random.default_rng(0)
    w0 = {"a": rng.standard_normal((3, 4)).astype(np.float32), "b": rng.standard_normal(4).astype(np.float32)}
    targets = [{k: 3 * rng.standard_normal(v.shape).astype(np.float32) for k, v in w0.items()} for _ in range(6)]
    lr, wd, epochs, spe = 0.1, 1e-2, 3, 2

    def loss(p, tgt):
        return sum(jnp.sum(jnp.square(p[k] - tgt[k]) * (2.0 + i)) for i, k in enumerate(sorted(p)))

    tx, _ = _optimizer(Hyper(10, 0.0, lr, wd, 0.9, 5.0, tuple(lr_factor("cosine", e, epochs) for e in range(epochs)),
                             spe))
    params = jax.tree_util.tree_map(jnp.asarray, w0)
    state = tx.init(params)
    for s in range(epochs * spe):
        g = jax.grad(loss)(params, targets[s])
        upd, state = tx.update(g, state, params)
        params = optax.apply_updates(params, upd)

    tp = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in w0.items()}
    opt = torch.optim.SGD(list(tp.values()), lr=lr, momentum=0.9, weight_decay=wd)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for e in range(epochs):
        for s in range(spe):
            opt.zero_grad()
            tgt = targets[e * spe + s]
            sum(((tp[k] - torch.tensor(tgt[k])) ** 2 * (2.0 + i)).sum() for i, k in enumerate(sorted(tp))).backward()
            torch.nn.utils.clip_grad_norm_(list(tp.values()), 5.0)
            opt.step()
        sched.step()
    for k in w0:
        np.testing.assert_allclose(np.asarray(params[k]), tp[k].detach().numpy(), rtol=1e-5, atol=1e-6)


def test_corr_std_matches_corrcoef():
    from ghn_jax.eval.models import corr_std
    rng = np.random.default_rng(0)
    for shape in [(8, 3, 3, 3), (16, 4), (4, 16), (30, 30, 1, 1)]:
        w = rng.standard_normal(shape).astype(np.float32)
        w2 = w.reshape(shape[0], -1)
        w2 = w2.T if w2.shape[0] < w2.shape[1] else w2        # ppuda weights2mat
        ref = np.corrcoef(w2.astype(np.float64)).flatten().std(ddof=1)
        assert corr_std(w) == pytest.approx(ref, rel=1e-6)
    torch = pytest.importorskip("torch")
    w = rng.standard_normal((12, 5, 3, 3)).astype(np.float32)
    w2 = torch.tensor(w).reshape(12, -1).t()
    assert corr_std(w) == pytest.approx(float(torch.corrcoef(w2).flatten().std()), rel=1e-4)
    assert np.isnan(corr_std(rng.standard_normal((1, 8, 4, 4))))      # rows of one element: NaN in torch too
    assert np.isnan(corr_std(np.ones((6, 6), np.float32)))           # constant rows


def test_init_noise_skips_classifier_and_1d():
    from ghn_jax.eval.models import add_init_noise, corr_std
    rng = np.random.default_rng(1)
    v = {"params": {"conv": {"kernel": rng.standard_normal((3, 3, 4, 32)).astype(np.float32)},
                    "bn": {"scale": np.ones(32, np.float32), "bias": np.zeros(32, np.float32)},
                    "attn": {"in_proj": {"kernel": rng.standard_normal((32, 96)).astype(np.float32)}},
                    "fc": {"kernel": rng.standard_normal((32, 10)).astype(np.float32),
                           "bias": np.zeros(10, np.float32)}},
         "batch_stats": {"bn": {"mean": np.zeros(32, np.float32), "var": np.ones(32, np.float32)}}}
    beta = 1e-2
    out, used, skipped = add_init_noise(v, "params/fc/kernel", beta=beta, seed=0)
    assert sorted(used) == ["params/conv/kernel"] and skipped == []
    for path in ("fc", "bn", "attn"):            # classifier, 1-D, torch's in_proj_weight: untouched
        for leaf, x in v["params"][path].items():
            np.testing.assert_array_equal(np.asarray(out["params"][path][leaf] if path != "attn" else
                                                     out["params"]["attn"]["in_proj"]["kernel"]),
                                          x if path != "attn" else v["params"]["attn"]["in_proj"]["kernel"])
    std = corr_std(np.transpose(v["params"]["conv"]["kernel"], (3, 2, 0, 1)))
    z = (out["params"]["conv"]["kernel"] - v["params"]["conv"]["kernel"]) / (beta * std)
    assert abs(z.mean()) < 0.15 and 0.85 < z.std() < 1.15          # 1152 draws of N(0, 1)
    assert used["params/conv/kernel"] == pytest.approx(std)
