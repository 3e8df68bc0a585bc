import pytest

from ghn_jax import zoo
from ghn_jax.errors import UnknownArchError

ALL_74 = (
    ["alexnet"] + [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]
    + [f"resnet{d}" for d in (18, 34, 50, 101, 152)]
    + ["resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2"]
    + ["squeezenet1_0", "squeezenet1_1"] + [f"shufflenet_v2_x{w}" for w in ("0_5", "1_0", "1_5", "2_0")]
    + ["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large"]
    + [f"mnasnet{w}" for w in ("0_5", "0_75", "1_0", "1_3")] + ["googlenet", "inception_v3"]
    + [f"densenet{d}" for d in (121, 161, 169, 201)]
    + [f"regnet_{t}_{s}" for t in "xy" for s in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf")]
    + [f"efficientnet_b{i}" for i in range(8)] + [f"efficientnet_v2_{s}" for s in "sml"]
    + ["vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "swin_t", "swin_s", "swin_b"]
    + [f"convnext_{s}" for s in ("tiny", "small", "base", "large")]
)


def test_all_74_registered():
    assert len(ALL_74) == 74
    assert sorted(ALL_74) == zoo.list_models()


@pytest.mark.parametrize("alias,name", [("vit_b16", "vit_b_16"), ("ViT-B-16", "vit_b_16"),
                                        ("resnet-50", "resnet50"), ("efficientnet-b0", "efficientnet_b0"),
                                        ("swin_T", "swin_t"), ("mobilenetv3_large", "mobilenet_v3_large")])
def test_aliases(alias, name):
    assert zoo.canonical_name(alias) == name


def test_unknown_name_lists_closest():
    with pytest.raises(UnknownArchError) as e:
        zoo.get("resnet51")
    assert "resnet50" in str(e.value) and "resnet51" in str(e.value)


def test_inception_input_size():
    assert zoo.input_size("inception_v3") == 299 and zoo.input_size("resnet18") == 224


def test_family_index_matches_the_registry():
    """A lookup imports only its family (ghn_jax/zoo/_index.py): the index must name the module
    that registers every model."""
    from ghn_jax.zoo import registry
    from ghn_jax.zoo._index import MODULE
    zoo.list_models()
    assert MODULE == {n: e.builder.__module__.rsplit(".", 1)[-1] for n, e in registry._REGISTRY.items()
                      if e.builder.__module__.startswith("ghn_jax.zoo.")}


def test_lookup_imports_only_its_family():
    import subprocess
    import sys
    code = ("import sys; from ghn_jax import zoo; zoo.get('ViT-B-16'); "
            "print(sorted(m for m in sys.modules if m.startswith('ghn_jax.zoo.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "ghn_jax.zoo.vit" in out and "ghn_jax.zoo.resnet" not in out
