"""The benchmark scripts keep running (their figures are read by people, not asserted)."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_predict_speed_prints_a_json_summary(tmp_path):
    env = dict(os.environ, GHN_JAX_CACHE=str(tmp_path))
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "predict_speed.py"), "--sizes", "t",
                          "--archs", "resnet18", "--repeats", "1", "--cold-repeats", "1"],
                         capture_output=True, text=True, check=True, cwd=ROOT, env=env).stdout
    summary = json.loads(out.strip().splitlines()[-1])
    row = summary["results"]["ghn3-t/resnet18"]
    assert summary["benchmark"] == "predict_speed"
    assert row["warm"]["predict"] > 0 and row["cold_first_call"] > 0 and row["cold_with_caches"] > 0


@pytest.mark.slow
def test_train_step_prints_a_json_summary():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "train_step.py"), "--meta", "2",
                          "--size", "32", "--steps", "2"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    row = json.loads(out.strip().splitlines()[-1])["results"][0]
    assert row["steps"] == 2 and row["compilations"] > 0 and row["warm_step_s"] > 0
