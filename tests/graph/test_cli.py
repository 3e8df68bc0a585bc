import subprocess
import sys

import numpy as np

from ghn_jax.graph import build_graph
from ghn_jax.graph.primitives import PRIMITIVES


def test_cli_out_and_plot(tmp_path):
    out, png = tmp_path / "g.npz", tmp_path / "g.png"
    r = subprocess.run([sys.executable, "-m", "ghn_jax.graph", "--arch", "resnet18", "--out", str(out),
                        "--plot", str(png)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "53 nodes" in r.stdout and "not predicted: 0" in r.stdout
    z = np.load(out)
    g = build_graph("resnet18")
    np.testing.assert_array_equal(z["node_types"], g.node_types)
    np.testing.assert_array_equal(z["spd"], g.spd)
    assert z["shapes"].shape == (53, 4) and z["shapes"].dtype.kind == "i"
    assert z["param_names"][1] == "params/conv1/kernel" and z["torch_names"][1] == "conv1.weight"
    assert z["param_names"][0] == "" and z["torch_names"][0] == ""
    assert [PRIMITIVES[t] for t in z["node_types"][-2:]] == ["conv", "bias"]
    assert png.stat().st_size > 5000 and png.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.npz", "g.png"]   # no temp files left


def test_cli_unwritable_out_leaves_nothing(tmp_path):
    bad = tmp_path / "missing_dir" / "g.npz"
    r = subprocess.run([sys.executable, "-m", "ghn_jax.graph", "--arch", "resnet18", "--out", str(bad)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
