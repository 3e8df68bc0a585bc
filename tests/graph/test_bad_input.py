"""Bad input gets one clear error: the library raises a GhnError, the CLI prints one line."""
import subprocess
import sys

import jax
import jax.numpy as jnp
import flax.linen as nn
import pytest

from ghn_jax.errors import NotAClassifierError, UnknownArchError, UnsupportedOpError
from ghn_jax.graph import build_graph


class WithGroupNorm(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Conv(8, (3, 3), name="conv")(x)
        x = nn.GroupNorm(num_groups=2, name="gn")(x)
        return nn.Dense(10, name="fc")(x.mean((1, 2)))


class WithScan(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Conv(8, (3, 3), name="conv")(x).mean((1, 2))
        x, _ = jax.lax.scan(lambda c, _: (jnp.tanh(c), None), x, None, length=3)
        return nn.Dense(10, name="fc")(x)


class Conv1D(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Conv(8, (3,), name="conv1d")(x.reshape(x.shape[0], -1, 3))
        return nn.Dense(10, name="fc")(x.mean(1))


class EndsInNorm(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Dense(10, name="fc")(nn.Conv(8, (3, 3), name="conv")(x).mean((1, 2)))
        return nn.LayerNorm(name="final_ln")(x)


class EndsInSum(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Conv(8, (3, 3), name="conv")(x).mean((1, 2))
        return nn.Dense(10, name="a")(x) + nn.Dense(10, name="b")(x)


def test_unknown_arch_suggests_names():
    with pytest.raises(UnknownArchError, match="resnet50"):
        build_graph("resnet-5O")


@pytest.mark.parametrize("model,match", [
    (WithGroupNorm(), "gn.*GroupNorm"),
    (WithScan(), "control flow 'scan'"),
    (Conv1D(), "conv1d.*1-D convolution"),
])
def test_unsupported_op_named(model, match):
    with pytest.raises(UnsupportedOpError, match=match):
        build_graph(model, (1, 16, 16, 3))


@pytest.mark.parametrize("model,match", [(EndsInNorm(), "'ln' node \\(final_ln\\)"),
                                         (EndsInSum(), "'sum' node")])
def test_not_a_classifier(model, match):
    with pytest.raises(NotAClassifierError, match=match):
        build_graph(model, (1, 16, 16, 3))


def test_cli_unknown_arch_is_one_line():
    r = subprocess.run([sys.executable, "-m", "ghn_jax.graph", "--arch", "resnet5O"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown architecture 'resnet5O'")
    assert "Traceback" not in r.stderr and "resnet50" in lines[0]
