"""Graph parity with the reference GHN-3 graphs of 9 torchvision models (tests/data)."""
import os

import numpy as np
import pytest

from ghn_jax.graph import build_graph
from tests.graph.isomorphism import assert_same_graph

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "ghn3_ref_graphs.npz")
ARCHS = ["resnet18", "resnet50", "vit_b_16", "mobilenet_v2", "convnext_tiny", "densenet121",
         "efficientnet_b0", "swin_t", "regnet_y_400mf"]


@pytest.fixture(scope="module")
def ref():
    return np.load(DATA)


@pytest.mark.parametrize("arch", ARCHS)
def test_graph_matches_reference(arch, ref):
    g = build_graph(arch)
    assert_same_graph(g, ref[f"{arch}/node_feat"], ref[f"{arch}/edges"],
                      ref[f"{arch}/node_names"], ref[f"{arch}/node_param_shape"])


def test_not_predicted_resnet(ref):
    assert build_graph("resnet18").not_predicted == []
