"""python -m ghn_jax.finetune end to end (digits, mock CIFAR-10, mock ImageNet) and bad input."""
import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

from ghn_jax.cli import run_cli
from ghn_jax.errors import GhnError
from ghn_jax.finetune import finetune, main

DEEPNET = "deepnets:val:115"


def _cli(capsys, *args):
    rc = run_cli(main, list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_digits_ghn_init_cli(ghn10_path, digits_dir, tmp_path, capsys):
    from ghn_jax.export.files import load_flax
    rc, out, err = _cli(capsys, "--arch", "resnet18", "--init", "ghn", "--ckpt", ghn10_path, "--dataset", "digits",
                        "--data-dir", digits_dir, "--epochs", "2", "--steps-per-epoch", "2", "--batch-size", "4",
                        "--image-size", "16", "--eval-batch-size", "8", "--eval-max-batches", "1",
                        "--eval-every", "2", "--log-every", "1", "--out-dir", str(tmp_path))
    assert rc == 0, err
    m = json.loads((tmp_path / "metrics.json").read_text())
    c = m["config"]
    assert c["lr"] == 0.025 and c["wd"] == 3e-4 and c["schedule"] == "cosine" and c["label_smoothing"] == 0.0
    assert c["adapted_stem"] and c["steps_per_epoch"] == 2 and c["beta"] == 1e-5
    assert m["init"]["init"] == "ghn" and not m["init"]["tiled_classifier"] and m["init"]["noise_tensors"] == 20
    assert [e["epoch"] for e in m["epochs"]] == [0, 1, 2] and len(m["steps"]) == 4
    assert m["epochs"][0]["bn"] == "batch" and "test_top1" not in m["epochs"][1]
    assert m["epochs"][2]["bn"] == "running" and m["final"]["bn"] == "running"
    assert m["epochs"][1]["lr"] == pytest.approx(0.025) and m["epochs"][2]["lr"] == pytest.approx(0.0125)
    assert all(np.isfinite(s["loss"]) for s in m["steps"])
    assert (tmp_path / "curves.png").stat().st_size > 1000
    v = load_flax(str(tmp_path / "model.safetensors"))
    assert np.abs(v["batch_stats"]["bn1"]["mean"]).max() > 0          # running statistics were updated
    assert "final (running BatchNorm statistics)" in out


def test_ghn_init_tiles_classifier_on_mock_cifar(ghn1000, tmp_path):
    logs = []
    with tfds.testing.mock_data(num_examples=24):
        out = finetune(DEEPNET, "cifar10", init="ghn", ghn=ghn1000, epochs=1, steps_per_epoch=2, batch_size=8,
                       eval_batch_size=8, eval_max_batches=1, data_dir=str(tmp_path), progress=False,
                       log=logs.append, return_variables=True)
    info = out["init"]
    assert info["tiled_classifier"] and info["ghn_num_classes"] == 1000 and info["noise_tensors"] > 0
    assert any("tiled" in line for line in logs)
    assert info["classifier"].startswith("params/classifier/")
    cls = out["variables"]["params"]
    for key in info["classifier"].split("/")[1:]:
        cls = cls[key]
    assert cls.shape[-1] == 10
    assert out["config"]["lr"] == 0.025 and out["final"]["bn"] == "batch"     # DeepNets: batch statistics
    assert np.isfinite(out["epochs"][1]["train_loss"])


def test_mock_imagenet_recipe(tmp_path):
    with tfds.testing.mock_data(num_examples=8):
        out = finetune("squeezenet1_1", "imagenet2012", init="random", epochs=1, steps_per_epoch=1, batch_size=4,
                       eval_batch_size=4, eval_max_batches=1, data_dir=str(tmp_path), workers=0, progress=False,
                       log=None)
    c = out["config"]
    assert c["lr"] == 0.1 and c["wd"] == 1e-4 and c["label_smoothing"] == 0.1 and c["schedule"] == "mstep"
    assert c["image_size"] == 224 and c["train_split"] == "train" and c["eval_split"] == "validation"
    assert out["final"]["n_images"] == 4


def test_bad_input(digits_dir, capsys):
    rc, _, err = _cli(capsys, "--arch", "resnet18", "--init", "ghn", "--dataset", "digits", "--epochs", "1")
    assert rc == 2 and err.strip().startswith("error: --init ghn needs --ckpt")
    rc, _, err = _cli(capsys, "--arch", "efficientnet_b0", "--init", "random", "--dataset", "digits",
                      "--data-dir", digits_dir, "--epochs", "1")
    assert rc == 2 and "efficientnet_b0 has no small-image stem" in err and "--keep-stem" in err
    assert len(err.strip().splitlines()) == 1
    rc, _, err = _cli(capsys, "--arch", "vit_b_16", "--init", "random", "--dataset", "digits",
                      "--data-dir", digits_dir, "--epochs", "1", "--keep-stem")
    assert rc == 2 and "vit_b_16 cannot take 32x32 images" in err
    with pytest.raises(GhnError, match="unknown schedule"):
        finetune("resnet18", "digits", init="random", schedule="linear", data_dir=digits_dir)
