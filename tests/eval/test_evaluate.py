"""python -m ghn_jax.evaluate end to end (digits, mock ImageNet, mock CIFAR-10) and bad input."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from ghn_jax.cli import run_cli
from ghn_jax.errors import GhnError
from ghn_jax.evaluate import evaluate, main

DEEPNET = "deepnets:val:115"      # a small DeepNets-1M net (5 cells, batch norm)


def _cli(capsys, *args):
    rc = run_cli(main, list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_digits_cli_json_table_plot(ghn10_path, digits_dir, tmp_path, capsys):
    out, plot = tmp_path / "res.json", tmp_path / "acc.png"
    rc, stdout, stderr = _cli(capsys, "--ckpt", ghn10_path, "--arch", "resnet18", DEEPNET, "--dataset", "digits",
                              "--data-dir", digits_dir, "--batch-size", "16", "--max-batches", "2", "--out", str(out),
                              "--plot", str(plot))
    assert rc == 0, stderr
    doc = json.loads(out.read_text())
    assert doc["dataset"] == "digits" and doc["split"] == "test" and doc["batch_size"] == 16 and doc["seed"] == 1111
    res = {r["arch"]: r for r in doc["results"]}
    assert set(res) == {"resnet18", DEEPNET}
    for r in res.values():
        assert r["n_images"] == 32 and r["n_batches"] == 2 and r["image_size"] == 32
        assert 0 <= r["top1"] <= r["top5"] <= 100
        assert r["param_norm"] > 0 and r["predicted_norm"] > 0 and r["seconds"]["eval"] > 0
    assert res["resnet18"]["adapted_stem"] and res["resnet18"]["n_predicted"] == 62
    assert res["resnet18"]["param_norm"] == pytest.approx(res["resnet18"]["predicted_norm"], rel=1e-6)
    assert plot.stat().st_size > 1000
    assert "resnet18" in stdout and "mean±std over 2 archs" in stdout


def test_accuracy_equals_a_manual_train_mode_pass(ghn10, digits_dir):
    """Predicted nets are evaluated with batch statistics: evaluate()'s numbers == counting by
    hand over the same seeded batches with the model in train mode (BatchNorm with batch
    statistics), no padding (the last batch is short, as in the reference)."""
    import jax
    from ghn_jax import data
    from ghn_jax.eval import data as edata, models
    res = evaluate(ghn10, ["resnet18"], "digits", split="test[:20]", batch_size=8, data_dir=digits_dir, seed=7,
                   image_size=16, progress=False, log=None)[0]
    assert res["n_images"] == 20 and res["n_batches"] == 3
    cfg = edata.data_config("digits", data_dir=digits_dir, image_size=16, batch_size=8)
    t = models.build_target("resnet18", 10, 16)
    v, _, graph = models.predict(ghn10, t, rng=7)
    assert t.adapted and models.classifier_path(graph) == "params/fc/kernel"
    assert float(np.abs(v["batch_stats"]["bn1"]["mean"]).max()) == 0.0     # no running statistics predicted
    f = jax.jit(lambda v, x: t.module.apply(v, x, train=True, mutable=["batch_stats"])[0])
    c1 = c5 = n = 0
    for b in data.eval_batches(cfg, "test[:20]", 8, shuffle_seed=7):     # unpadded: 8, 8, 4
        logits = np.asarray(f(v, b["image"]))
        order = np.argsort(-logits, axis=1)
        c1 += int(np.sum(order[:, 0] == b["label"]))
        c5 += int(np.sum(np.any(order[:, :5] == b["label"][:, None], axis=1)))
        n += len(b["label"])
    assert n == 20
    assert res["top1"] == pytest.approx(100 * c1 / n) and res["top5"] == pytest.approx(100 * c5 / n)


def test_mock_imagenet(ghn1000, tmp_path):
    with tfds.testing.mock_data(num_examples=10):
        res = evaluate(ghn1000, ["squeezenet1_1"], "imagenet2012", data_dir=str(tmp_path), batch_size=4,
                       max_batches=2, workers=0, progress=False, log=None)
    r = res[0]
    assert r["image_size"] == 224 and r["n_images"] == 8 and not r["adapted_stem"]
    assert 0 <= r["top1"] <= r["top5"] <= 100


def test_mock_cifar10_deepnets_split(ghn10_path, tmp_path, capsys):
    out = tmp_path / "r.json"
    with tfds.testing.mock_data(num_examples=20):
        rc, stdout, stderr = _cli(capsys, "--ckpt", ghn10_path, "--deepnets", "val", "--start", "115",
                                  "--num-nets", "1", "--dataset", "cifar10", "--data-dir", str(tmp_path),
                                  "--batch-size", "8", "--out", str(out))
    assert rc == 0, stderr
    r = json.loads(out.read_text())["results"][0]
    assert r["arch"] == DEEPNET and r["n_images"] == 20 and r["n_batches"] == 3 and r["image_size"] == 32


# ----------------------------------------------------------------------------- bad input

def _one_line_error(rc, stderr, *needles):
    assert rc == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_imagenet_ghn_on_cifar_points_to_finetune(ghn1000_path, digits_dir, capsys):
    rc, _, err = _cli(capsys, "--ckpt", ghn1000_path, "--arch", "resnet18", "--dataset", "digits",
                      "--data-dir", digits_dir)
    _one_line_error(rc, err, "1000-class", "digits has 10 classes", "python -m ghn_jax.finetune --arch resnet18")


def test_image_size_the_model_cannot_take(ghn10_path, digits_dir, capsys):
    rc, _, err = _cli(capsys, "--ckpt", ghn10_path, "--arch", "vit_b_16", "--dataset", "digits",
                      "--data-dir", digits_dir)
    _one_line_error(rc, err, "vit_b_16 cannot take 32x32 images", "--image-size 224")
    rc, _, err = _cli(capsys, "--ckpt", ghn10_path, "--arch", "inception_v3", "--dataset", "digits",
                      "--data-dir", digits_dir)
    _one_line_error(rc, err, "inception_v3 cannot take 32x32 images", "--image-size 299")


def test_missing_dataset_and_unknown_arch(ghn10_path, tmp_path, capsys):
    rc, _, err = _cli(capsys, "--ckpt", ghn10_path, "--arch", "resnet18", "--dataset", "cifar10",
                      "--data-dir", str(tmp_path))
    _one_line_error(rc, err, "dataset 'cifar10' is not prepared", "tfds build cifar10", str(tmp_path))
    rc, _, err = _cli(capsys, "--ckpt", ghn10_path, "--arch", "resnet5O", "--dataset", "digits")
    _one_line_error(rc, err, "unknown architecture 'resnet5O'", "resnet50")
    rc, _, err = _cli(capsys, "--ckpt", ghn10_path, "--arch", "deepnets:nope:1", "--dataset", "digits")
    _one_line_error(rc, err, "unknown DeepNets-1M split 'nope'")
    with pytest.raises(GhnError, match="unknown architecture 'deepnets:val'"):
        evaluate(None, ["deepnets:val"], "digits")


def test_cli_subprocess_one_line(ghn10_path, tmp_path):
    env = dict(os.environ, GHN_JAX_CACHE=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "ghn_jax.evaluate", "--ckpt", ghn10_path, "--arch", "resnet18",
                        "--dataset", "cifar100", "--data-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: dataset 'cifar100' is not prepared")
