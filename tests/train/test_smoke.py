"""`configs/smoke.py` end to end (slow: ~7 min on 2 CPU cores): the loss goes down."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.mark.slow
def test_smoke_config_trains_and_its_loss_decreases(tmp_path):
    p = subprocess.run([sys.executable, "-m", "ghn_jax.train", "--config", os.path.join(ROOT, "configs", "smoke.py"),
                        "--workdir", str(tmp_path / "w"), f"--config.data.data_dir={tmp_path / 'tfds'}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=1800, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert p.returncode == 0, p.stderr[-3000:]
    rows = [json.loads(l) for l in open(tmp_path / "w" / "metrics.jsonl")]
    first = sum(r["loss_avg"] for r in rows[:3]) / 3       # steps 1-30
    last = sum(r["loss_avg"] for r in rows[-3:]) / 3       # the last 30 steps
    assert last < first - 0.1, (first, last)
    assert os.path.exists(tmp_path / "w" / "ghn.safetensors")
