"""Small-image stems against torchvision models edited as ppuda's adjust_net edits them."""
import numpy as np
import pytest

FAMILIES = ["resnet18", "densenet121", "mobilenet_v2", "mobilenet_v3_small", "vgg11_bn", "alexnet",
            "shufflenet_v2_x0_5", "googlenet", "mnasnet0_5", "convnext_tiny"]


def _adjust(tv, name):
    """adjust_net(model, large_input=False) semantics (ppuda/utils/utils.py), written out."""
    import torch.nn as nn

    def first_conv(conv):                       # centre 3x3 of the kernel, stride 1, padding 1
        k = conv.weight.shape[-1]
        o = (k - 3) // 2
        conv.weight = nn.Parameter(conv.weight.data[:, :, o:o + 3, o:o + 3].clone())
        conv.kernel_size, conv.padding, conv.stride = (3, 3), (1, 1), (1, 1)

    if name.startswith("resnet"):
        first_conv(tv.conv1)
        tv.maxpool = nn.Identity()
    elif name.startswith("densenet"):
        first_conv(tv.features[0])
        tv.features[3] = nn.Identity()
    elif name.startswith("mobilenet"):
        for m in tv.features[:5].modules():
            if isinstance(m, nn.Conv2d):
                m.stride = 1
    elif name.startswith("vgg"):
        for i, m in enumerate(tv.features[:10]):
            if isinstance(m, nn.MaxPool2d):
                tv.features[i] = nn.Identity()
    elif name == "alexnet":
        tv.features[0].stride = 1
        tv.features[2] = nn.Identity()
    elif name.startswith("mnasnet"):
        tv.layers[0].stride = 1
    elif name.startswith("shufflenet"):
        tv.maxpool = nn.Identity()              # conv1 is a Sequential: its `stride = 1` is a no-op
    elif name == "googlenet":
        tv.maxpool1 = nn.Identity()             # conv1 is a BasicConv2d: its `stride = 1` is a no-op
    elif name.startswith("convnext"):
        list(tv.features[0].children())[0].stride = 1
    return tv


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_small_stem_matches_adjusted_torchvision(name):
    torch = pytest.importorskip("torch")
    import jax
    import jax.numpy as jnp
    from ghn_jax import zoo
    from ghn_jax.eval import small
    from ghn_jax.export import torch_to_flax
    from tests.zoo.parity import abstract_variables, torchvision_model
    tv = _adjust(torchvision_model(name, num_classes=10, randomize=True), name).eval()
    module = small.adapt(zoo.get(name, num_classes=10))
    variables = torch_to_flax({k: v.detach().numpy() for k, v in tv.state_dict().items()},
                              abstract_variables(module, 32))
    x = np.random.RandomState(0).randn(2, 3, 32, 32).astype(np.float32)
    with torch.no_grad():
        ref = tv(torch.from_numpy(x)).numpy()
    run = jax.jit(lambda v, x: module.apply(v, x, train=False))
    out = np.asarray(run(variables, jnp.asarray(x.transpose(0, 2, 3, 1))))
    scale = max(1.0, float(np.abs(ref).max()))
    assert np.abs(out - ref).max() <= 1e-4 * scale
