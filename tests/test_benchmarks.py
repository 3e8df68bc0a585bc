"""The benchmark scripts keep running (their figures are read by people, not asserted)."""
import json
import os
import subprocess
import sys

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
