"""Predicted Flax variables -> a torchvision state_dict / .pt file (needs torch)."""
from collections import OrderedDict
from typing import Any, Iterable

from ghn_jax.errors import GhnError
from ghn_jax.export.torch_params import flax_to_torch, torch_name


def torchvision_model(arch: str, num_classes: int = 1000):
    """A fresh torchvision classifier (its own init) in eval mode."""
    try:
        import torchvision
    except ImportError as e:
        raise GhnError(f"exporting to PyTorch needs torch/torchvision: pip install 'ghn_jax[torch]' ({e})")
    kwargs = {"num_classes": num_classes}
    if arch in ("googlenet", "inception_v3"):
        kwargs["init_weights"] = True
    return getattr(torchvision.models, arch)(**kwargs).eval()


def to_torchvision_state_dict(arch: str, variables: Any, predicted: Iterable[str],
                              num_classes: int = 1000) -> "OrderedDict":
    """torchvision's state_dict of `arch` with the predicted tensors written in.

    Entries the GHN did not predict keep torchvision's own init; BatchNorm running
    statistics are set from `variables` (0 / 1 after prediction). The result loads with
    `load_state_dict(strict=True)`.
    """
    import torch
    model = torchvision_model(arch, num_classes)
    sd = model.state_dict()
    ours = flax_to_torch(variables)
    keep = set(predicted)
    for col_path in keep:
        keys = col_path.split("/")
        k = torch_name(keys[0], tuple(keys[1:]))
        if k not in sd:
            raise GhnError(f"predicted '{col_path}' has no torchvision key '{k}' in {arch}")
    wanted = {torch_name(p.split("/")[0], tuple(p.split("/")[1:])) for p in keep}
    for k, v in ours.items():
        if k not in sd:
            raise GhnError(f"'{k}' is not a parameter of torchvision's {arch}")
        if k in wanted or k.endswith(("running_mean", "running_var")):
            if tuple(v.shape) != tuple(sd[k].shape):
                raise GhnError(f"'{k}': shape {tuple(v.shape)} does not fit torchvision's {tuple(sd[k].shape)}")
            sd[k] = torch.from_numpy(v.copy()).to(sd[k].dtype)
    return sd


def save_state_dict(path: str, state_dict) -> None:
    import torch
    from ghn_jax.cli import atomic_write
    with atomic_write(path) as tmp:
        torch.save(state_dict, tmp)
