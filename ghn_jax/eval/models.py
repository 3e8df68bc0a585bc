"""Target networks for evaluation and fine-tuning: naming, building, predicting, running.

An architecture is named by a string: a zoo name (`resnet50`, loose spellings accepted) or
a DeepNets-1M net `deepnets:SPLIT:INDEX` (`deepnets:val:3`); a `NetSpec` works too.
`build_target` turns it into a `Target` (the Flax module for a class count and image
size, stems adapted to small images where supported), checked to run at that size.

BatchNorm modes (`forward`):
* `bn='batch'`: every BatchNorm normalises with the statistics of the current batch and
  nothing else changes (dropout off, no auxiliary heads) -- the reference's evaluation of
  predicted parameters (design/ghn3-reference.md §4.7: `model.eval()`, then BatchNorm2d in
  train mode without running statistics). Padding rows (mask False) are left out of the
  statistics, so a padded last batch gives the same numbers as the short batch itself.
* `bn='running'`: the model's eval mode (running statistics), for trained networks.
DeepNets networks have no running statistics: they always use batch statistics.
"""
import contextlib
import dataclasses
import functools
import re
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import jax
import jax.numpy as jnp
import flax.linen as nn

from ghn_jax import compile_options, tree_paths
from ghn_jax.errors import GhnError, UnknownArchError

DEEPNETS_PREFIX = "deepnets:"
SMALL_IMAGE_MAX = 32       # ppuda adapts stems when images are <= 32 px (adjust_net(large_input=imsize > 32))


@dataclasses.dataclass
class Target:
    """A network to predict, evaluate or train."""
    name: str                          # 'resnet18' or 'deepnets:val:3'
    module: nn.Module
    num_classes: int
    image_size: int
    kind: str                          # 'zoo' | 'deepnets'
    zoo_name: Optional[str] = None
    spec: Any = None                   # deepnets NetSpec
    adapted: bool = False              # stem adapted to small images (ppuda adjust_net)
    note: str = ""                     # e.g. why a stem was not adapted

    @property
    def has_running_stats(self) -> bool:
        return self.kind == "zoo"

    def input_shape(self, batch: int = 2) -> Tuple[int, int, int, int]:
        return (batch, self.image_size, self.image_size, 3)


# ------------------------------------------------------------------------------ names

def parse_arch(arch: Union[str, Any]) -> Tuple[str, Any]:
    """('zoo', canonical name) or ('deepnets', NetSpec). Raises UnknownArchError."""
    from ghn_jax import zoo
    from ghn_jax.deepnets import NetSpec, sample
    if isinstance(arch, NetSpec):
        return ("zoo", zoo.canonical_name(arch.arch)) if arch.genotype is None else ("deepnets", arch)
    if not isinstance(arch, str):
        raise GhnError(f"an architecture is a zoo name, 'deepnets:SPLIT:INDEX' or a NetSpec, got {type(arch).__name__}")
    if arch.lower().startswith(DEEPNETS_PREFIX):
        m = re.fullmatch(r"deepnets:(\w+):(\d+)", arch.strip(), flags=re.IGNORECASE)
        if not m:
            raise UnknownArchError(f"unknown architecture '{arch}': DeepNets nets are named deepnets:SPLIT:INDEX, "
                                   f"e.g. deepnets:val:3")
        spec = sample(m.group(1).lower(), int(m.group(2)))     # GhnError for an unknown split / index
        if spec.genotype is None:                               # predefined:0 is torchvision's ResNet-50
            return "zoo", zoo.canonical_name(spec.arch)
        return "deepnets", spec
    return "zoo", zoo.canonical_name(arch)


def arch_name(arch: Union[str, Any]) -> str:
    if isinstance(arch, str):
        kind, v = parse_arch(arch)
        return v if kind == "zoo" and not arch.lower().startswith(DEEPNETS_PREFIX) else arch.strip().lower()
    return f"deepnets:{arch.split}:{arch.index}" if arch.genotype is not None else arch.arch


def default_image_size(arch: Union[str, Any], dataset_size: int) -> int:
    """The dataset's size; on ImageNet-size data, a zoo model's own size (299 for inception_v3)."""
    from ghn_jax import zoo
    kind, v = parse_arch(arch)
    if kind == "zoo" and dataset_size >= 224:
        return zoo.input_size(v)
    return dataset_size


# ------------------------------------------------------------------------------ building

def build_target(arch: Union[str, Any], num_classes: int, image_size: int, adapt: str = "auto",
                 check: bool = True) -> Target:
    """The network `arch` with `num_classes` outputs for `image_size` px images.

    adapt (zoo models on images <= 32 px): 'auto' adapts the stem where ppuda's adjust_net
    does and keeps it otherwise (noted in `Target.note`, like the reference's warning);
    'require' raises for families without an adaptation; 'never' keeps the ImageNet stem.
    DeepNets nets use their CIFAR stems (imagenet=False) below 224 px.
    check: run `jax.eval_shape` of init on a (1, S, S, 3) input and raise a GhnError if the
    network cannot take that size.
    """
    from ghn_jax import zoo
    from ghn_jax.deepnets import Network
    if adapt not in ("auto", "require", "never"):
        raise ValueError(adapt)
    kind, v = parse_arch(arch)
    name = arch_name(arch)
    size = int(image_size)
    if kind == "deepnets":
        imagenet = size >= 224
        spec = v.with_(num_classes=int(num_classes))
        if spec.wide:
            spec = spec.with_(C=spec.eval_C(imagenet))
        t = Target(name, Network(spec, imagenet), int(num_classes), size, "deepnets", spec=spec)
    else:
        module = zoo.get(v, num_classes=int(num_classes))
        t = Target(name, module, int(num_classes), size, "zoo", zoo_name=v)
        if size <= SMALL_IMAGE_MAX and adapt != "never":
            from ghn_jax.eval import small
            adapted = small.adapt(module)
            if adapted is not None:
                t.module, t.adapted = adapted, True
            elif adapt == "require":
                raise GhnError(
                    f"{v} has no small-image stem here ({size}x{size} images): stems are adapted for "
                    f"{', '.join(small.SUPPORTED_FAMILIES)} (ppuda's adjust_net); use --image-size 224, or "
                    f"--keep-stem to train the ImageNet stem on {size}x{size} images")
            else:
                t.note = (f"{v}'s stem is not adapted to {size}x{size} images (no adaptation for this family, "
                          f"as in the reference)")
    if check:
        check_input_size(t)
    return t


def check_input_size(t: Target) -> None:
    """Raises a GhnError if the network cannot take (S, S) images (shapes only, no compute)."""
    x = jax.ShapeDtypeStruct(t.input_shape(1), jnp.float32)
    try:
        out = jax.eval_shape(lambda x: t.module.init({"params": jax.random.PRNGKey(0),
                                                      "dropout": jax.random.PRNGKey(0)}, x, train=False), x)
        logits = jax.eval_shape(lambda v, x: t.module.apply(v, x, train=False), out, x)
    except Exception as e:        # shape errors surface as many types (ValueError, TypeError, GhnError...)
        text = str(e).strip().splitlines()
        why = text[0] if text else type(e).__name__
        hint = ""
        if t.kind == "zoo":
            from ghn_jax import zoo
            hint = f"; it is built for {zoo.input_size(t.zoo_name)} px, try --image-size {zoo.input_size(t.zoo_name)}"
        raise GhnError(f"{t.name} cannot take {t.image_size}x{t.image_size} images ({why}){hint}") from None
    logits = logits[0] if isinstance(logits, tuple) else logits
    if tuple(logits.shape) != (1, t.num_classes):
        raise GhnError(f"{t.name} at {t.image_size}x{t.image_size} px gives outputs of shape {tuple(logits.shape)}, "
                       f"expected (1, {t.num_classes})")


# ------------------------------------------------------------------------------ BatchNorm modes

def _batch_norm_with_batch_stats(m: nn.BatchNorm, x: jnp.ndarray, mask: Optional[jnp.ndarray]):
    """torch BatchNorm in train mode (biased variance), statistics over the real rows only."""
    axes = tuple(range(x.ndim - 1))
    xf = x.astype(jnp.float32)
    if mask is None:
        mean = jnp.mean(xf, axes)
        var = jnp.mean(jnp.square(xf - mean), axes)
    else:
        w = mask.astype(jnp.float32).reshape((-1,) + (1,) * (x.ndim - 1))
        count = jnp.maximum(jnp.sum(w), 1.0) * float(np.prod(x.shape[1:-1]))
        mean = jnp.sum(xf * w, axes) / count
        var = jnp.sum(jnp.square((xf - mean) * w), axes) / count
    y = (xf - mean) * jax.lax.rsqrt(var + m.epsilon)
    if m.use_scale:
        y = y * m.get_variable("params", "scale")
    if m.use_bias:
        y = y + m.get_variable("params", "bias")
    return y.astype(x.dtype)


@contextlib.contextmanager
def batch_stat_norms(mask: Optional[jnp.ndarray] = None):
    """Within this context every Flax BatchNorm uses the current batch's statistics."""
    def interceptor(next_fun, args, kwargs, context):
        m = context.module
        if context.method_name != "__call__" or not isinstance(m, nn.BatchNorm) or m.is_initializing() \
                or m.axis not in (-1, args[0].ndim - 1):
            return next_fun(*args, **kwargs)
        return _batch_norm_with_batch_stats(m, args[0], mask)

    with nn.intercept_methods(interceptor):
        yield


def forward(t: Target, variables, images: jnp.ndarray, mask: Optional[jnp.ndarray] = None,
            bn: str = "batch") -> jnp.ndarray:
    """Logits in eval mode (no dropout, no auxiliary heads); BatchNorm as `bn` says."""
    return _forward(t.module, _use_batch_stats(t, bn), variables, images, mask)


def _use_batch_stats(t: Target, bn: str) -> bool:
    if bn not in ("batch", "running"):
        raise ValueError(bn)
    return bn == "batch" or not t.has_running_stats


def _forward(module: nn.Module, batch_stats: bool, variables, images, mask):
    if batch_stats:
        with batch_stat_norms(mask):
            out = module.apply(variables, images, train=False)
    else:
        out = module.apply(variables, images, train=False)
    return out[0] if isinstance(out, tuple) else out


@functools.partial(jax.jit, static_argnames=("module", "batch_stats"))
def _counts(variables, images, labels, mask, *, module, batch_stats):
    from ghn_jax.eval.metrics import topk_correct
    return topk_correct(_forward(module, batch_stats, variables, images, mask), labels, (1, 5), mask)


def topk_counts(t: Target, variables, images, labels, mask, bn: str = "batch") -> jnp.ndarray:
    """Correct top-1 and top-5 counts of one batch (jitted; compiled once per module and shape,
    so repeated evaluations of the same architecture in a process compile nothing)."""
    return _counts(variables, images, labels, mask, module=t.module, batch_stats=_use_batch_stats(t, bn))


# ------------------------------------------------------------------------------ parameters

def predict(ghn, t: Target, rng: int = 0, tile_classifier: bool = False):
    """(variables, PredictionReport, ArchGraph) of the GHN's prediction for the target."""
    from ghn_jax.graph import build_graph
    shape = t.input_shape(2)
    if t.kind == "zoo" and not t.adapted:
        from ghn_jax.graph.cache import zoo_graph
        variables, report = ghn.predict(t.zoo_name, shape, num_classes=t.num_classes, rng=rng,
                                        tile_classifier=tile_classifier)
        graph = zoo_graph(t.zoo_name, t.num_classes, shape)
    else:
        graph = build_graph(t.module, shape, name=t.name)
        variables, report = ghn.predict(graph, rng=rng, tile_classifier=tile_classifier)
    return variables, report, graph


def random_init(t: Target, seed: int = 0):
    """The model's own initialisation (Flax's initialisers of the twin's layers)."""
    key = jax.random.PRNGKey(seed)
    # Runs once: compile it cheaply.
    init = jax.jit(lambda k: t.module.init({"params": k, "dropout": k}, jnp.zeros(t.input_shape(1)), train=False),
                   compiler_options=compile_options.quick())
    return jax.device_get(init(key))


def classifier_path(graph) -> Optional[str]:
    """Flax path of the classifier weight (the GHN graph's last weight node), if any."""
    if not graph.last_weight:
        return None
    return graph.param_names[graph.n_nodes - 2] or None


def param_norm(variables) -> float:
    """sqrt(sum ||p||^2) over all parameters (the reference's 'total norm'; no running stats)."""
    leaves = jax.tree_util.tree_leaves(variables["params"])
    return float(np.sqrt(sum(float(np.sum(np.square(np.asarray(v, np.float64)))) for v in leaves)))


def num_params(variables) -> int:
    return int(sum(np.size(v) for v in jax.tree_util.tree_leaves(variables["params"])))


# ------------------------------------------------------------------------------ GHN init noise

def corr_std(w_torch: np.ndarray) -> float:
    """Unbiased std of all entries of torch.corrcoef(W2d) (ppuda's get_corr(w).std()).

    W2d is the weight reshaped to (out, -1) and transposed when out < in*kh*kw (ppuda's
    weights2mat), so its n rows (n >= m columns) are the variables. corrcoef = R R^T with R
    the centred rows scaled to unit norm; the n x n matrix is never formed: the sum of its
    entries is |R^T 1|^2 and the sum of their squares |R^T R|_F^2 (an m x m product).
    NaN where torch gives NaN (a constant row, or rows of one element).
    """
    w = np.asarray(w_torch).reshape(w_torch.shape[0], -1)
    if w.shape[0] < w.shape[1]:
        w = w.T
    n, m = w.shape
    if m < 2 or n < 2:
        return float("nan")
    dtype = np.float64 if n * m * m <= 2e9 else np.float32
    x = w.astype(dtype)
    x = x - x.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(x, axis=1)
    if not np.all(norms > 0):
        return float("nan")
    r = x / norms[:, None]
    total = float(np.sum(np.square(r.sum(axis=0), dtype=np.float64)))
    gram = np.asarray(jnp.asarray(r).T @ jnp.asarray(r)) if dtype == np.float32 else r.T @ r
    squares = float(np.sum(np.square(gram, dtype=np.float64)))
    count = float(n) * float(n)
    var = (squares - total * total / count) / (count - 1.0)
    return float(np.sqrt(max(var, 0.0)))


def add_init_noise(variables, classifier: Optional[str], beta: float = 1e-5, seed: int = 0):
    """ppuda's init(model, orth=False, beta): W += beta * std(corrcoef(W2d)) * N(0, 1) for every
    >= 2-D module `weight` (conv, linear, DeepNets pos_enc) except the classifier.

    Returns (new variables, {param path: std used}, [paths skipped because std is NaN]).
    torch's MultiheadAttention in_proj_weight, ViT/Swin tables and class tokens are not a
    module's `.weight`, so the reference does not touch them and neither does this.
    """
    from ghn_jax.export.torch_params import to_torch_layout, torch_name
    rng = np.random.default_rng(seed)
    flat = tree_paths.flatten(variables)
    out, used, skipped = dict(flat), {}, []
    for path in sorted(flat):
        keys = tuple(path.split("/"))
        value = np.asarray(flat[path])
        if keys[0] != "params" or value.ndim < 2 or path == classifier:
            continue
        if torch_name("params", keys[1:]).rsplit(".", 1)[-1] != "weight":
            continue
        std = corr_std(to_torch_layout("params", keys[1:], value))
        if not np.isfinite(std):
            skipped.append(path)
            continue
        noise = rng.standard_normal(value.shape).astype(np.float32)
        out[path] = (value + beta * std * noise).astype(value.dtype)
        used[path] = std
    return tree_paths.unflatten(out), used, skipped


def tree_to_device(tree) -> Dict[str, Any]:
    return jax.tree_util.tree_map(jnp.asarray, tree)
