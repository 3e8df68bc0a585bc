"""python -m ghn_jax.finetune --arch ARCH --init ghn|random [--ckpt GHN] --dataset NAME --epochs N

Trains a network from a GHN's predicted parameters or from its own random initialisation,
with the reference's fine-tuning protocol (design/ghn3-reference.md §5.2, ghn3's
train_ddp.py / ppuda's train_net.py):

* GHN init: all parameters predicted (the classifier tiled when the dataset's class count
  differs from the GHN's), then ppuda's init(orth=False, beta=1e-5): every >= 2-D weight
  except the classifier gets beta * std(corrcoef(W2d)) * N(0, 1) added.
* SGD, momentum 0.9, weight decay on every parameter, gradient clipping at norm 5, learning
  rate stepped once per epoch (multistep at E/3 and 2E/3, gamma 0.1, on ImageNet; cosine on
  CIFAR-size data), label smoothing 0.1 on ImageNet. Defaults per dataset in RECIPES.
* BatchNorm trains with batch statistics and updates running statistics; after training the
  network is evaluated in eval mode (running statistics). The initialisation (epoch 0) is
  evaluated with batch statistics, as `python -m ghn_jax.evaluate` does. DeepNets nets have
  no running statistics and always use batch statistics.

Python:
    from ghn_jax.finetune import finetune
    out = finetune("resnet18", "cifar10", init="ghn", ghn=ghn, epochs=1)
    out["final"]["top1"], out["epochs"], out["steps"]
"""
import argparse
import dataclasses
import functools
import json
import math
import os
import sys
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ghn_jax.cli import run_cli
from ghn_jax.errors import GhnError

# Defaults per transform kind. imagenet: the ResNet-50 recipe of ghn3's train_ddp.py (§5.2);
# cifar: ppuda's train_net.py for 32 px datasets (lr 0.025, wd 3e-4, batch 96, cosine, no smoothing).
RECIPES = {
    "imagenet": {"lr": {"random": 0.1, "ghn": 0.025}, "wd": 1e-4, "batch_size": 128, "label_smoothing": 0.1,
                 "schedule": "mstep"},
    "cifar": {"lr": {"random": 0.025, "ghn": 0.025}, "wd": 3e-4, "batch_size": 96, "label_smoothing": 0.0,
              "schedule": "cosine"},
}
SCHEDULES = ("cosine", "mstep", "constant")


def lr_factor(schedule: str, epoch: int, epochs: int, milestones: Sequence[int] = (), gamma: float = 0.1) -> float:
    """Multiplier of the base learning rate during (0-based) `epoch`, as torch's per-epoch schedulers:
    cosine = CosineAnnealingLR(T_max=epochs), mstep = MultiStepLR(milestones, gamma)."""
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / max(1, epochs)))
    if schedule == "mstep":
        return gamma ** sum(1 for m in milestones if epoch >= m)
    if schedule == "constant":
        return 1.0
    raise GhnError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")


def default_milestones(epochs: int) -> List[int]:
    """[30, 60] for 90 epochs (the reference), scaled to other lengths."""
    return sorted({max(1, round(epochs / 3)), max(1, round(2 * epochs / 3))})


class Hyper(NamedTuple):
    """Everything the compiled training step depends on besides the module (hashable: steps
    of the same module and hyper-parameters share one compiled program in a process)."""
    num_classes: int
    label_smoothing: float
    lr: float
    wd: float
    momentum: float
    grad_clip: float
    factors: Tuple[float, ...]         # lr multiplier of each epoch
    steps_per_epoch: int


def _optimizer(hp: Hyper):
    """torch.optim.SGD(lr, momentum, weight_decay=wd) after clip_grad_norm_(grad_clip), the
    learning rate stepped once per epoch; returns (optax transform, lr(count))."""
    import jax.numpy as jnp
    import optax
    factors = jnp.asarray(hp.factors, jnp.float32)

    def learning_rate(count):
        epoch = jnp.minimum(count // hp.steps_per_epoch, factors.shape[0] - 1)
        return hp.lr * factors[epoch]

    parts = [optax.clip_by_global_norm(hp.grad_clip)] if hp.grad_clip and hp.grad_clip > 0 else []
    parts += [optax.add_decayed_weights(hp.wd)] if hp.wd else []
    parts += [optax.trace(decay=hp.momentum, nesterov=False)] if hp.momentum else []
    parts += [optax.scale_by_learning_rate(learning_rate)]
    return optax.chain(*parts), learning_rate


def _train_step(params, batch_stats, opt_state, x, y, key, *, module, hp: Hyper):
    """One SGD step: train mode (batch statistics, running statistics updated, dropout)."""
    import jax
    import jax.numpy as jnp
    import optax
    tx, _ = _optimizer(hp)

    def loss_fn(p):
        v = {"params": p} if batch_stats is None else {"params": p, "batch_stats": batch_stats}
        out, upd = module.apply(v, x, train=True, mutable=["batch_stats"], rngs={"dropout": key})
        logits = (out[0] if isinstance(out, tuple) else out).astype(jnp.float32)   # main head (reference)
        target = jax.nn.one_hot(y, hp.num_classes)
        if hp.label_smoothing:
            target = optax.smooth_labels(target, hp.label_smoothing)
        loss = jnp.mean(optax.softmax_cross_entropy(logits, target))
        return loss, (logits, upd.get("batch_stats", batch_stats))

    (loss, (logits, new_bs)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    acc = jnp.mean((jnp.argmax(logits, -1) == y).astype(jnp.float32))
    return params, new_bs, opt_state, jnp.stack([loss, acc])


@functools.lru_cache(maxsize=None)
def _compiled_train_step():
    import jax
    return jax.jit(_train_step, static_argnames=("module", "hp"), donate_argnums=(0, 1, 2))


def _evaluate(t, variables, batches, bn: str, max_batches: Optional[int]) -> Dict[str, Any]:
    import jax
    from ghn_jax.eval import models
    correct, count = None, 0
    it = iter(batches)
    try:
        for i, b in enumerate(it):
            if max_batches is not None and i >= max_batches:
                break
            c = models.topk_counts(t, variables, b["image"], b["label"], b["mask"], bn=bn)
            correct = c if correct is None else correct + c
            count += int(np.sum(b["mask"]))
    finally:
        if hasattr(it, "close"):              # stops data worker processes (ImageNet)
            it.close()
    if count == 0:
        raise GhnError("the evaluation split is empty")
    correct = np.asarray(jax.device_get(correct), np.float64)
    return {"top1": float(100.0 * correct[0] / count), "top5": float(100.0 * correct[1] / count),
            "n_images": count, "bn": "running" if (bn == "running" and t.has_running_stats) else "batch"}


def initial_variables(t, init: str, ghn=None, seed: int = 0, beta: float = 1e-5,
                      log: Callable[[str], None] = print):
    """(variables, info) for init 'ghn' (prediction + ppuda noise) or 'random' (the model's own init)."""
    from ghn_jax.eval import models
    if init == "random":
        v = models.random_init(t, seed)
        return v, {"init": "random", "param_norm": models.param_norm(v)}
    if init != "ghn":
        raise GhnError(f"unknown init {init!r}; expected 'ghn' or 'random'")
    if ghn is None:
        raise GhnError("init 'ghn' needs a GHN: pass --ckpt NAME|PATH (ghn=... in Python)")
    k = int(ghn.config.num_classes)
    tile = k != t.num_classes
    if tile:
        log(f"note: the GHN predicts {k}-class classifiers and the dataset has {t.num_classes} classes: the "
            f"classifier is tiled from the {k}-class prediction, as the reference does (predict --tile-classifier)")
    v, report, graph = models.predict(ghn, t, rng=seed, tile_classifier=tile)
    cls = models.classifier_path(graph)
    v, used, skipped = models.add_init_noise(v, cls, beta=beta, seed=seed)
    if skipped:
        log(f"note: no init noise for {len(skipped)} tensor(s) whose correlation std is undefined "
            f"(the reference would write NaN there): {', '.join(skipped[:3])}{' ...' if len(skipped) > 3 else ''}")
    return v, {"init": "ghn", "tiled_classifier": tile, "ghn_num_classes": k, "classifier": cls,
               "predicted": len(report.predicted), "not_predicted": list(report.not_predicted),
               "predicted_norm": float(report.total_norm), "param_norm": models.param_norm(v),
               "noise_beta": beta, "noise_tensors": len(used), "noise_skipped": skipped}


def finetune(arch, data_cfg, *, init: str = "ghn", ghn=None, epochs: int = 1, lr: Optional[float] = None,
             wd: Optional[float] = None, momentum: float = 0.9, batch_size: Optional[int] = None,
             image_size: Optional[int] = None, seed: int = 0, schedule: Optional[str] = None,
             milestones: Optional[Sequence[int]] = None, label_smoothing: Optional[float] = None,
             grad_clip: float = 5.0, beta: float = 1e-5, steps_per_epoch: Optional[int] = None,
             eval_batch_size: int = 64, eval_seed: int = 1111, eval_max_batches: Optional[int] = None,
             eval_every: int = 1, log_every: int = 50, adapt: str = "require", data_dir: Optional[str] = None,
             workers: Optional[int] = None, out_dir: Optional[str] = None, progress: bool = True,
             return_variables: bool = False,
             log: Optional[Callable[[str], None]] = print) -> Dict[str, Any]:
    """Fine-tunes `arch` (zoo name, 'deepnets:SPLIT:INDEX' or NetSpec) on `data_cfg` (a dataset
    name or a data_cfg). None = the dataset's recipe (RECIPES). workers: data worker processes
    (default: the data_cfg's, 8 on ImageNet). Returns a JSON-able dict:
    config, init (info), init_eval, epochs (per-epoch records; epoch 0 = the init), steps
    (per-`log_every`-steps records), final {top1, top5, n_images, bn}, seconds; plus
    'variables' if return_variables. With out_dir: metrics.json, curves.png and
    model.safetensors (the trained Flax variables) are written there.
    """
    import jax
    import jax.numpy as jnp
    from ghn_jax import data as gdata
    from ghn_jax.eval import data as edata, models
    log = log or (lambda s: None)
    if init not in ("ghn", "random"):
        raise GhnError(f"unknown init {init!r}; expected 'ghn' or 'random'")
    if init == "ghn" and ghn is None:
        raise GhnError("init 'ghn' needs a GHN: pass --ckpt NAME|PATH (ghn=... in Python)")
    if epochs < 1:
        raise GhnError("--epochs must be >= 1")
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        if not os.access(out_dir, os.W_OK):
            raise GhnError(f"cannot write to '{out_dir}'")
    name = models.arch_name(arch)                              # unknown names fail first
    cfg = edata.data_config(data_cfg, data_dir=data_dir, workers=workers)
    recipe = RECIPES["imagenet" if edata.kind(cfg) == "imagenet" else "cifar"]
    lr = float(lr if lr is not None else recipe["lr"][init])
    wd = float(wd if wd is not None else recipe["wd"])
    batch_size = int(batch_size or recipe["batch_size"])
    schedule = schedule or recipe["schedule"]
    milestones = list(milestones) if milestones else default_milestones(epochs)
    lr_factor(schedule, 0, epochs, milestones)                # unknown schedule fails here
    ls = float(label_smoothing if label_smoothing is not None else recipe["label_smoothing"])
    size = int(image_size or models.default_image_size(arch, edata.dataset_image_size(cfg)))
    cfg = edata.with_size(cfg, size)
    cfg.batch_size = batch_size
    cfg.colour_jitter = False                                   # §5.2: no ColorJitter when training target nets
    k = edata.num_classes(cfg)
    gdata.source(cfg.name, cfg.train_split, cfg.get("data_dir"))   # missing dataset: fail before any work
    test_size = edata.eval_size(cfg, size)
    t = models.build_target(arch, k, size, adapt=adapt)
    if test_size != size:
        models.check_input_size(dataclasses.replace(t, image_size=test_size))   # ImageNet tests at max(S, 224)
    if t.note:
        log(f"warning: {t.note}")
    spe = int(steps_per_epoch or gdata.steps_per_epoch(cfg))
    total = spe * epochs
    config = {"arch": name, "init": init, "dataset": cfg.name, "train_split": cfg.train_split,
              "eval_split": cfg.eval_split, "epochs": epochs, "steps_per_epoch": spe, "lr": lr, "wd": wd,
              "momentum": momentum, "batch_size": batch_size, "image_size": size, "eval_image_size": test_size,
              "schedule": schedule, "milestones": milestones if schedule == "mstep" else None,
              "label_smoothing": ls, "grad_clip": grad_clip, "beta": beta if init == "ghn" else None, "seed": seed,
              "adapted_stem": t.adapted, "num_classes": k}
    t0 = time.perf_counter()

    variables, init_info = initial_variables(t, init, ghn=ghn, seed=seed, beta=beta, log=log)
    variables = models.tree_to_device(variables)
    t_init = time.perf_counter() - t0
    test = gdata.eval_batches(edata.with_size(cfg, test_size), cfg.eval_split, eval_batch_size, 0, 1,
                              shuffle_seed=eval_seed, pad_last=True)
    init_eval = _evaluate(t, variables, test, "batch", eval_max_batches)
    log(f"{name} {init} init: test top1 {init_eval['top1']:.3f} top5 {init_eval['top5']:.3f} "
        f"(BatchNorm with batch statistics)")
    epochs_log: List[Dict[str, Any]] = [{"epoch": 0, "step": 0, "test_top1": init_eval["top1"],
                                         "test_top5": init_eval["top5"], "bn": init_eval["bn"]}]
    steps_log: List[Dict[str, Any]] = []

    hp = Hyper(k, ls, lr, wd, momentum, float(grad_clip or 0.0),
               tuple(lr_factor(schedule, e, epochs, milestones) for e in range(epochs)), spe)
    tx, learning_rate = _optimizer(hp)
    params = variables["params"]
    batch_stats = variables.get("batch_stats")
    opt_state = tx.init(params)
    step_fn = functools.partial(_compiled_train_step(), module=t.module, hp=hp)

    it = gdata.train_iter(cfg, seed=seed, process_index=0, process_count=1)
    base_key = jax.random.PRNGKey(seed)
    bar = None
    if progress:
        try:
            from tqdm import tqdm
            bar = tqdm(total=total, desc=f"{name} ({init})", unit="step", leave=False, dynamic_ncols=True,
                       disable=None)
        except ImportError:
            bar = None
    window, epoch_stats = [], []
    step = 0
    t_train = time.perf_counter()
    final = None
    try:
        for epoch in range(1, epochs + 1):
            epoch_stats = []
            for _ in range(spe):
                b = next(it)
                params, batch_stats, opt_state, stats = step_fn(params, batch_stats, opt_state, b["image"],
                                                                b["label"], jax.random.fold_in(base_key, step))
                step += 1
                window.append(stats)
                epoch_stats.append(stats)
                if bar is not None:
                    bar.update(1)
                if step % log_every == 0 or step == total:
                    w = np.asarray(jax.device_get(jnp.stack(window)), np.float64)
                    window = []
                    rec = {"step": step, "epoch": round(step / spe, 4), "lr": float(learning_rate(step - 1)),
                           "loss": float(w[:, 0].mean()), "train_top1": float(100 * w[:, 1].mean())}
                    _check_finite(rec["loss"], step, lr)
                    steps_log.append(rec)
                    if bar is not None:
                        bar.set_postfix(loss=f"{rec['loss']:.3f}")
            e = np.asarray(jax.device_get(jnp.stack(epoch_stats)), np.float64)
            rec = {"epoch": epoch, "step": step, "lr": float(learning_rate(step - 1)),
                   "train_loss": float(e[:, 0].mean()), "train_top1": float(100 * e[:, 1].mean())}
            _check_finite(rec["train_loss"], step, lr)
            if epoch == epochs or (eval_every and epoch % eval_every == 0):
                v = {"params": params} if batch_stats is None else {"params": params, "batch_stats": batch_stats}
                r = _evaluate(t, v, test, "running", eval_max_batches)
                rec.update(test_top1=r["top1"], test_top5=r["top5"], bn=r["bn"])
                if epoch == epochs:
                    final = r
            epochs_log.append(rec)
            log(f"epoch {epoch}/{epochs}: lr {rec['lr']:.4g} train loss {rec['train_loss']:.4f} "
                f"top1 {rec['train_top1']:.2f}" + (f" | test top1 {rec['test_top1']:.3f} top5 {rec['test_top5']:.3f}"
                                                    if "test_top1" in rec else ""))
    finally:
        if bar is not None:
            bar.close()
        if hasattr(it, "close"):
            it.close()
    seconds = {"init": round(t_init, 3), "train_and_eval": round(time.perf_counter() - t_train, 3),
               "total": round(time.perf_counter() - t0, 3)}
    out = {"config": config, "init": init_info, "init_eval": init_eval, "epochs": epochs_log, "steps": steps_log,
           "final": final, "seconds": seconds}
    variables = {"params": params} if batch_stats is None else {"params": params, "batch_stats": batch_stats}
    if out_dir:
        from ghn_jax.cli import atomic_write
        from ghn_jax.eval.plots import training_curves
        from ghn_jax.export.files import save_flax
        with atomic_write(os.path.join(out_dir, "metrics.json")) as tmp:
            with open(tmp, "w") as f:
                json.dump(out, f, indent=1)
        training_curves(steps_log, epochs_log, os.path.join(out_dir, "curves.png"),
                        title=f"{name} on {cfg.name}, {init} init")
        save_flax(os.path.join(out_dir, "model.safetensors"), jax.device_get(variables),
                  {"arch": name, "init": init, "dataset": cfg.name, "num_classes": str(k),
                   "image_size": str(size), "adapted_stem": str(t.adapted)})
    if return_variables:
        out["variables"] = jax.device_get(variables)
    return out


def _check_finite(loss: float, step: int, lr: float) -> None:
    if not np.isfinite(loss):
        raise GhnError(f"the training loss is {loss} at step {step}; lower the learning rate (--lr, now {lr:g})")


def _parser():
    ap = argparse.ArgumentParser(prog="python -m ghn_jax.finetune",
                                 description="Train a network from a GHN's predicted parameters or from random init "
                                             "(the reference's fine-tuning protocol).")
    ap.add_argument("--arch", required=True,
                    help="zoo architecture (resnet18, ...) or DeepNets net deepnets:SPLIT:INDEX")
    ap.add_argument("--init", required=True, choices=["ghn", "random"], help="GHN-predicted or the model's own init")
    ap.add_argument("--ckpt", default=None, help="GHN for --init ghn: released name or checkpoint file")
    ap.add_argument("--trust-pickle", action="store_true", help="allow unpickling torch/joblib checkpoints")
    ap.add_argument("--dataset", required=True, help="imagenet2012 | cifar10 | cifar100 | digits (a TFDS name)")
    ap.add_argument("--data-dir", default=None, help="TFDS data_dir (default $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    ap.add_argument("--epochs", type=int, required=True)
    ap.add_argument("--lr", type=float, default=None,
                    help="base learning rate (default: ImageNet 0.1 random / 0.025 GHN init; CIFAR-size 0.025)")
    ap.add_argument("--wd", type=float, default=None, help="weight decay (default: ImageNet 1e-4, CIFAR-size 3e-4)")
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--batch-size", type=int, default=None, help="default: ImageNet 128, CIFAR-size 96")
    ap.add_argument("--image-size", type=int, default=None, help="default: 224 on ImageNet (299 inception_v3), else 32")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--schedule", choices=SCHEDULES, default=None,
                    help="per-epoch lr schedule (default: mstep on ImageNet, cosine otherwise)")
    ap.add_argument("--milestones", type=int, nargs="+", default=None,
                    help="mstep epochs where the lr drops x0.1 (default: E/3 and 2E/3, i.e. 30 60 for 90 epochs)")
    ap.add_argument("--label-smoothing", type=float, default=None, help="default: 0.1 on ImageNet, 0 otherwise")
    ap.add_argument("--grad-clip", type=float, default=5.0, help="global gradient-norm clip (0: off)")
    ap.add_argument("--beta", type=float, default=1e-5, help="init noise scale for --init ghn (ppuda init beta)")
    ap.add_argument("--steps-per-epoch", type=int, default=None,
                    help="train steps per epoch (default: ceil(train images / batch size))")
    ap.add_argument("--eval-batch-size", type=int, default=64)
    ap.add_argument("--eval-max-batches", type=int, default=None, help="evaluate on the first N test batches only")
    ap.add_argument("--eval-every", type=int, default=1,
                    help="evaluate every N epochs and after the last (0: only after the last)")
    ap.add_argument("--log-every", type=int, default=50, help="record the training loss/accuracy every N steps")
    ap.add_argument("--keep-stem", action="store_true",
                    help="on <= 32 px images, train the ImageNet stem instead of adapting it (adjust_net)")
    ap.add_argument("--workers", type=int, default=None, help="data worker processes (default: 8 ImageNet, 0 else)")
    ap.add_argument("--out-dir", default=None, help="folder for metrics.json, curves.png, model.safetensors")
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from ghn_jax.cli import enable_compilation_cache
    from ghn_jax.eval import data as edata, models
    if args.init == "ghn" and not args.ckpt:
        raise GhnError("--init ghn needs --ckpt NAME|PATH (a released GHN such as ghn3tm8, or WORKDIR/ghn.safetensors)")
    if args.init == "random" and args.ckpt:
        print("note: --ckpt is ignored with --init random", file=sys.stderr)
    for flag in ("batch_size", "eval_batch_size", "log_every", "steps_per_epoch"):
        v = getattr(args, flag)
        if v is not None and v < 1:
            raise GhnError(f"--{flag.replace('_', '-')} must be >= 1")
    models.arch_name(args.arch)                                   # unknown architecture: fail first
    cfg = edata.data_config(args.dataset, data_dir=args.data_dir, workers=args.workers)
    from ghn_jax import data as gdata
    gdata.source(cfg.name, cfg.train_split, cfg.get("data_dir"))  # missing dataset: fail before loading the GHN
    enable_compilation_cache()
    ghn = None
    if args.init == "ghn":
        from ghn_jax.ghn.predictor import GHN
        ghn = GHN.from_pretrained(args.ckpt, trust_pickle=args.trust_pickle)
    out = finetune(args.arch, cfg, init=args.init, ghn=ghn, epochs=args.epochs, lr=args.lr, wd=args.wd,
                   momentum=args.momentum, batch_size=args.batch_size, image_size=args.image_size, seed=args.seed,
                   schedule=args.schedule, milestones=args.milestones, label_smoothing=args.label_smoothing,
                   grad_clip=args.grad_clip, beta=args.beta, steps_per_epoch=args.steps_per_epoch,
                   eval_batch_size=args.eval_batch_size, eval_max_batches=args.eval_max_batches,
                   eval_every=args.eval_every, log_every=args.log_every,
                   adapt="never" if args.keep_stem else "require", out_dir=args.out_dir,
                   log=lambda s: print(s, flush=True))
    f = out["final"]
    print(f"final ({f['bn']} BatchNorm statistics): top1 {f['top1']:.3f} top5 {f['top5']:.3f} on {f['n_images']} "
          f"test images (init: top1 {out['init_eval']['top1']:.3f}); {out['seconds']['total']:.1f} s")
    if args.out_dir:
        print(f"wrote {os.path.join(args.out_dir, 'metrics.json')}, curves.png, model.safetensors")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
