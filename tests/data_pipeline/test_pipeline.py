"""grain pipelines: shapes, checkpointing, process slicing, epochs, eval batches, mocked ImageNet."""
import json

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from ghn_jax.data import pipeline, sources
from ghn_jax.errors import GhnError


def _cfg(digits_dir, **kw):
    c = ml_collections.ConfigDict(dict(
        name="digits", data_dir=digits_dir, train_split="validation", eval_split="test", image_size=32,
        batch_size=16, colour_jitter=False, num_workers=0, prefetch=0, extra_field="ignored"))
    c.update(kw)
    return c


def _take(it, n):
    return [next(it) for _ in range(n)]


def _same(a, b):
    return all(np.array_equal(x["image"], y["image"]) and np.array_equal(x["label"], y["label"])
               for x, y in zip(a, b, strict=True))


def test_train_batches_shapes_and_values(digits_dir):
    it = pipeline.train_iter(_cfg(digits_dir, colour_jitter=True, prefetch=2), seed=0)
    b = next(it)
    assert b["image"].shape == (16, 32, 32, 3) and b["image"].dtype == np.float32
    assert b["label"].shape == (16,) and b["label"].dtype == np.int32
    assert ((0 <= b["label"]) & (b["label"] < 10)).all() and np.isfinite(b["image"]).all()
    assert -3 < b["image"].min() < -1 and 1 < b["image"].max() < 3      # normalised
    assert pipeline.steps_per_epoch(_cfg(digits_dir)) == 12             # ceil(179 / 16)


def test_state_save_and_restore(digits_dir):
    cfg = _cfg(digits_dir, prefetch=2)
    it = pipeline.train_iter(cfg, seed=5)
    _take(it, 5)
    state = json.loads(json.dumps(it.get_state()))      # JSON-serialisable
    after = _take(it, 3)
    fresh = pipeline.train_iter(cfg, seed=5)
    fresh.set_state(state)
    assert _same(_take(fresh, 3), after)


def test_two_processes_concatenate_to_one(digits_dir):
    # 179 examples, batch 32: batch 5 straddles the first epoch boundary.
    one = _take(pipeline.train_iter(_cfg(digits_dir, batch_size=32), seed=3, process_index=0, process_count=1), 7)
    halves = [_take(pipeline.train_iter(_cfg(digits_dir, batch_size=32, prefetch=1), seed=3,
                                        process_index=p, process_count=2), 7) for p in range(2)]
    for s in range(7):
        assert halves[0][s]["image"].shape == (16, 32, 32, 3)
        joined = {k: np.concatenate([halves[0][s][k], halves[1][s][k]]) for k in ("image", "label")}
        assert _same([joined], [one[s]])
    with pytest.raises(GhnError, match="not divisible"):
        pipeline.train_iter(_cfg(digits_dir, batch_size=30), seed=0, process_index=0, process_count=4)


def test_epochs_are_permutations_reshuffled_and_seeded(digits_dir):
    n = 179
    src = sources.source("digits", "validation", digits_dir)
    want = np.sort([src[i]["label"] for i in range(n)])
    labels = np.concatenate([b["label"] for b in _take(pipeline.train_iter(_cfg(digits_dir), seed=1), 23)])
    epoch0, epoch1 = labels[:n], labels[n:2 * n]
    np.testing.assert_array_equal(np.sort(epoch0), want)
    np.testing.assert_array_equal(np.sort(epoch1), want)
    assert not np.array_equal(epoch0, epoch1)                              # reshuffled
    other = np.concatenate([b["label"] for b in _take(pipeline.train_iter(_cfg(digits_dir), seed=2), 12)])
    assert not np.array_equal(other[:n], epoch0)                           # seed matters
    again = np.concatenate([b["label"] for b in _take(pipeline.train_iter(_cfg(digits_dir), seed=1), 12)])
    np.testing.assert_array_equal(again[:n], epoch0)


def test_worker_processes_do_not_change_the_stream(digits_dir):
    cfg = _cfg(digits_dir, colour_jitter=True, num_workers=2, prefetch=1)
    ref = _take(pipeline.train_iter(_cfg(digits_dir, colour_jitter=True), seed=7), 4)
    it = pipeline.train_iter(cfg, seed=7)
    resumed = pipeline.train_iter(cfg, seed=7)
    try:
        got = _take(it, 2)
        state = json.loads(json.dumps(it.get_state()))
        got += _take(it, 2)
        assert _same(got, ref)
        resumed.set_state(state)        # states are per num_workers: restore with the same count
        assert _same(_take(resumed, 2), ref[2:])
    finally:
        it.close()
        resumed.close()


def test_eval_batches_cover_the_split_once(digits_dir):
    cfg = _cfg(digits_dir)
    src = sources.source("digits", "test", digits_dir)
    want = [src[i]["label"] for i in range(len(src))]                      # 359 examples
    batches = list(pipeline.eval_batches(cfg, "test", 100))
    assert [b["image"].shape[0] for b in batches] == [100, 100, 100, 59]
    assert [b["label"] for b in batches][0].dtype == np.int32
    assert np.concatenate([b["label"] for b in batches]).tolist() == want   # split order
    assert all(b["mask"].all() for b in batches)
    again = list(pipeline.eval_batches(cfg, "test", 100))
    assert _same(again, batches)                                           # deterministic
    shuffled = list(pipeline.eval_batches(cfg, "test", 100, shuffle_seed=1111))
    lab = np.concatenate([b["label"] for b in shuffled])
    assert sorted(lab.tolist()) == sorted(want) and lab.tolist() != want
    assert _same(shuffled, list(pipeline.eval_batches(cfg, "test", 100, shuffle_seed=1111)))


def test_eval_batches_split_across_processes(digits_dir):
    cfg = _cfg(digits_dir)
    one = list(pipeline.eval_batches(cfg, "test", 100, shuffle_seed=0))
    parts = [list(pipeline.eval_batches(cfg, "test", 100, process_index=p, process_count=2, shuffle_seed=0))
             for p in range(2)]
    assert [b["image"].shape[0] for b in parts[0]] == [50, 50, 50, 30]      # 59 real -> 60 rows
    for s in range(4):
        mask = np.concatenate([parts[0][s]["mask"], parts[1][s]["mask"]])
        for k in ("image", "label"):
            joined = np.concatenate([parts[0][s][k], parts[1][s][k]])[mask]
            np.testing.assert_array_equal(joined, one[s][k])
    assert parts[1][3]["mask"].sum() == 29 and not parts[1][3]["image"][-1].any()
    padded = list(pipeline.eval_batches(cfg, "test", 100, pad_last=True))
    assert padded[-1]["image"].shape[0] == 100 and padded[-1]["mask"].sum() == 59


def test_mocked_imagenet_end_to_end():
    cfg = ml_collections.ConfigDict(dict(
        name="imagenet2012", data_dir=None, train_split="train", eval_split="validation", image_size=64,
        batch_size=4, colour_jitter=True, num_workers=0, prefetch=1))
    with tfds.testing.mock_data(num_examples=10):
        b = next(pipeline.train_iter(cfg, seed=0))
        assert b["image"].shape == (4, 64, 64, 3) and b["image"].dtype == np.float32
        assert b["label"].dtype == np.int32 and (b["label"] < 1000).all()
        ev = list(pipeline.eval_batches(cfg, batch_size=4))
        assert [e["image"].shape for e in ev] == [(4, 224, 224, 3)] * 2 + [(2, 224, 224, 3)]


def test_mocked_cifar_end_to_end():
    cfg = ml_collections.ConfigDict(dict(
        name="cifar10", data_dir=None, train_split="train", eval_split="test", image_size=32,
        batch_size=8, colour_jitter=False, num_workers=0, prefetch=0))
    with tfds.testing.mock_data(num_examples=20):
        b = next(pipeline.train_iter(cfg, seed=0))
        assert b["image"].shape == (8, 32, 32, 3) and (b["label"] < 10).all()
        assert pipeline.steps_per_epoch(cfg) == 3
