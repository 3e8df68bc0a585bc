"""python -m ghn_jax.evaluate --ckpt NAME|PATH (--arch A [A ...] | --deepnets SPLIT) --dataset NAME

Evaluates the parameters a GHN predicts, without any training, with the reference's
protocol (design/ghn3-reference.md §4.7, ghn3's eval_ghn.py): BatchNorm normalises with
the statistics of each test batch (the GHN predicts no running statistics), dropout off,
test batches of 64 from a shuffled loader seeded with --seed (the same order for every
model), top-1 / top-5 averaged over images. Results go to a JSON file, a table on stdout
and a bar plot.

Python:
    from ghn_jax.evaluate import evaluate
    results = evaluate(ghn, ["resnet18", "deepnets:val:0"], "cifar10", data_dir=...)
"""
import argparse
import json
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from ghn_jax.cli import run_cli
from ghn_jax.errors import GhnError

# DeepNets-1M's evaluation split sizes (the reference evaluates whole splits).
DEEPNETS_SPLIT_SIZES = {"val": 500, "test": 500, "wide": 100, "deep": 100, "dense": 100, "bnfree": 100,
                        "predefined": 2}


def _parser():
    ap = argparse.ArgumentParser(prog="python -m ghn_jax.evaluate",
                                 description="Evaluate the parameters a GHN predicts (no training), "
                                             "as the reference's eval_ghn.py.")
    ap.add_argument("--ckpt", required=True,
                    help="GHN: a released name (ghn3tm8, ghn3xlm16, ...) or a checkpoint file "
                         "(e.g. WORKDIR/ghn.safetensors from python -m ghn_jax.train)")
    ap.add_argument("--trust-pickle", action="store_true", help="allow unpickling torch/joblib checkpoints")
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--arch", nargs="+", metavar="A",
                      help="zoo architectures (resnet50, vit_b_16, ...) and/or DeepNets nets deepnets:SPLIT:INDEX")
    what.add_argument("--deepnets", metavar="SPLIT", help="evaluate DeepNets-1M nets of SPLIT (val, test, wide, "
                                                          "deep, dense, bnfree, predefined)")
    ap.add_argument("--num-nets", type=int, default=None,
                    help="with --deepnets: how many nets (default: the split's size in DeepNets-1M, 500 for val/test)")
    ap.add_argument("--start", type=int, default=0, help="with --deepnets: index of the first net")
    ap.add_argument("--dataset", required=True, help="imagenet2012 | cifar10 | cifar100 | digits (a TFDS name)")
    ap.add_argument("--data-dir", default=None, help="TFDS data_dir (default $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    ap.add_argument("--split", default=None,
                    help="split to evaluate on (default: validation for ImageNet, test otherwise)")
    ap.add_argument("--batch-size", type=int, default=64, help="test batch size (reference: 64; BatchNorm uses "
                                                                "batch statistics, so results depend on it)")
    ap.add_argument("--image-size", type=int, default=None,
                    help="image size (default: 224 on ImageNet, 299 for inception_v3; 32 on CIFAR/digits)")
    ap.add_argument("--seed", type=int, default=1111, help="seed of the shuffled test loader (reference: 1111)")
    ap.add_argument("--max-batches", type=int, default=None, help="evaluate only the first N batches")
    ap.add_argument("--keep-stem", action="store_true",
                    help="on <= 32 px images, keep the ImageNet stems (default: adapt them as ppuda's adjust_net)")
    ap.add_argument("--workers", type=int, default=None, help="data loading worker processes (default: 8 on "
                                                               "ImageNet, 0 otherwise)")
    ap.add_argument("--out", default=None, help="results JSON file")
    ap.add_argument("--plot", default=None, help="bar plot of the accuracy per architecture (.png/.pdf/.svg)")
    return ap


def _arch_list(args) -> List[str]:
    if args.arch:
        return list(args.arch)
    from ghn_jax.deepnets import SPLITS
    split = args.deepnets.lower()
    if split not in SPLITS:
        raise GhnError(f"unknown DeepNets-1M split {args.deepnets!r}; expected one of {', '.join(SPLITS)}")
    n = args.num_nets if args.num_nets is not None else DEEPNETS_SPLIT_SIZES.get(split)
    if n is None:
        raise GhnError(f"pass --num-nets N to evaluate nets of the {split} split")
    if n < 1 or args.start < 0:
        raise GhnError("--num-nets must be >= 1 and --start >= 0")
    if split == "predefined" and args.start + n > 2:
        n = max(0, 2 - args.start)
        if n == 0:
            raise GhnError("the predefined split has 2 nets (0: resnet50, 1: ViT)")
    return [f"deepnets:{split}:{i}" for i in range(args.start, args.start + n)]


def check_num_classes(ghn, num_classes: int, dataset: str, archs: Sequence[Any] = ()) -> None:
    """A GHN predicts classifiers for the classes it was trained on: evaluating predicted
    parameters on another dataset is meaningless without fine-tuning."""
    k = int(ghn.config.num_classes)
    if k != int(num_classes):
        example = archs[0] if archs and isinstance(archs[0], str) else "ARCH"
        raise GhnError(
            f"this GHN predicts {k}-class classifiers but {dataset} has {num_classes} classes: predicted parameters "
            f"can only be evaluated on the dataset the GHN was trained for (use a GHN trained on {dataset}, e.g. "
            f"python -m ghn_jax.train --config configs/ghn3_t_cifar10.py), or fine-tune from the GHN's "
            f"initialisation: python -m ghn_jax.finetune --arch {example} --init ghn --ckpt CKPT --dataset {dataset}")


def evaluate(ghn, archs: Sequence[Any], data_cfg, *, split: Optional[str] = None, batch_size: int = 64,
             image_size: Optional[int] = None, seed: int = 1111, max_batches: Optional[int] = None,
             adapt: str = "auto", data_dir: Optional[str] = None, workers: Optional[int] = None,
             progress: bool = True, log: Optional[Callable[[str], None]] = print,
             on_error: str = "raise") -> List[Dict[str, Any]]:
    """Evaluates the GHN's predicted parameters for each architecture; one dict per arch.

    archs: zoo names, 'deepnets:SPLIT:INDEX' strings or NetSpecs. data_cfg: a dataset name
    or a data_cfg (ghn_jax.eval.data.data_config). image_size: None = per architecture
    default (dataset size; on ImageNet the zoo model's own, 299 for inception_v3).
    workers: data worker processes (default: the data_cfg's, 8 on ImageNet).
    on_error: 'raise' (first failure raises) or 'record' (the arch's dict gets 'error' and
    evaluation goes on, as the reference's loop does).

    Each dict: arch, top1, top5 (%), n_images, n_batches, param_norm (all parameters, the
    reference's total norm), predicted_norm (predicted tensors only), n_params,
    n_predicted, not_predicted, image_size, adapted_stem, seconds {predict, eval}.
    """
    from ghn_jax import data as gdata
    from ghn_jax.eval import data as edata, models
    if on_error not in ("raise", "record"):
        raise ValueError(on_error)
    log = log or (lambda s: None)
    cfg = edata.data_config(data_cfg, data_dir=data_dir, batch_size=batch_size, workers=workers)
    split = split or cfg.eval_split
    names = [models.arch_name(a) for a in archs]             # unknown names fail here, before any work
    k = edata.num_classes(cfg)
    check_num_classes(ghn, k, cfg.name, names)
    base_size = edata.dataset_image_size(cfg)
    loaders: Dict[int, Any] = {}

    def loader(size: int):
        if size not in loaders:
            loaders[size] = gdata.eval_batches(edata.with_size(cfg, size), split, batch_size, 0, 1,
                                               shuffle_seed=seed, pad_last=True)
        return loaders[size]

    loader(edata.eval_size(cfg, image_size or base_size))     # a missing dataset fails here
    results = []
    for i, arch in enumerate(archs):
        name = names[i]
        try:
            size = edata.eval_size(cfg, image_size or models.default_image_size(arch, base_size))
            t = models.build_target(arch, k, size, adapt=adapt)
            if t.note:
                log(f"warning: {t.note}")
            res = _evaluate_one(ghn, t, loader(size), seed=seed, max_batches=max_batches,
                                progress=progress, desc=f"{i + 1}/{len(archs)} {name}")
        except Exception as e:
            if on_error == "raise":
                raise
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            log(f"error for {name}: {msg}")
            res = {"arch": name, "error": msg}
        results.append(res)
        if "error" not in res:
            log(f"{i + 1}/{len(archs)} {name}: top1 {res['top1']:.3f} top5 {res['top5']:.3f} "
                f"({res['n_images']} images, param norm {res['param_norm']:.4f}, "
                f"{res['seconds']['predict'] + res['seconds']['eval']:.1f} s)")
    return results


def _evaluate_one(ghn, t, batches, *, seed: int, max_batches: Optional[int], progress: bool,
                  desc: str) -> Dict[str, Any]:
    import jax
    from ghn_jax.eval import models
    t0 = time.perf_counter()
    variables, report, _ = models.predict(ghn, t, rng=seed)
    t1 = time.perf_counter()
    variables = models.tree_to_device(variables)
    correct, count, n_batches = None, 0, 0
    bar = _progress(progress, desc, max_batches)
    it = iter(batches)
    try:
        for b in it:
            if max_batches is not None and n_batches >= max_batches:
                break
            c = models.topk_counts(t, variables, b["image"], b["label"], b["mask"], bn="batch")
            correct = c if correct is None else correct + c
            count += int(np.sum(b["mask"]))
            n_batches += 1
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        if hasattr(it, "close"):              # stops data worker processes (ImageNet)
            it.close()
    if count == 0:
        raise GhnError("the evaluation split is empty")
    correct = np.asarray(jax.device_get(correct), np.float64)
    t2 = time.perf_counter()
    return {"arch": t.name, "top1": float(100.0 * correct[0] / count), "top5": float(100.0 * correct[1] / count),
            "n_images": count, "n_batches": n_batches, "param_norm": models.param_norm(variables),
            "predicted_norm": float(report.total_norm), "n_params": models.num_params(variables),
            "n_predicted": len(report.predicted), "not_predicted": list(report.not_predicted),
            "image_size": t.image_size, "adapted_stem": t.adapted,
            "seconds": {"predict": round(t1 - t0, 3), "eval": round(t2 - t1, 3)}}


def _progress(enabled: bool, desc: str, total: Optional[int]):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True, disable=None)


def summary(results: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    from ghn_jax.eval.metrics import mean_std
    ok = [r for r in results if "error" not in r]
    m1, s1 = mean_std([r["top1"] for r in ok])
    m5, s5 = mean_std([r["top5"] for r in ok])
    return {"n_archs": len(results), "n_failed": len(results) - len(ok), "top1_mean": m1, "top1_std": s1,
            "top5_mean": m5, "top5_std": s5}


def format_table(results: Sequence[Dict[str, Any]]) -> str:
    width = max([len("arch")] + [len(r["arch"]) for r in results])
    lines = [f"{'arch':<{width}}  {'top1':>7}  {'top5':>7}  {'images':>7}  {'param norm':>11}  {'seconds':>8}"]
    for r in results:
        if "error" in r:
            lines.append(f"{r['arch']:<{width}}  error: {r['error']}")
            continue
        sec = r["seconds"]["predict"] + r["seconds"]["eval"]
        lines.append(f"{r['arch']:<{width}}  {r['top1']:7.3f}  {r['top5']:7.3f}  {r['n_images']:7d}  "
                     f"{r['param_norm']:11.4f}  {sec:8.1f}")
    s = summary(results)
    if s["n_archs"] - s["n_failed"] > 1:
        lines.append(f"mean±std over {s['n_archs'] - s['n_failed']} archs: "
                     f"top1 {s['top1_mean']:.3f}±{s['top1_std']:.3f}, top5 {s['top5_mean']:.3f}±{s['top5_std']:.3f}")
    return "\n".join(lines)


def _check_writable(path: Optional[str]) -> None:
    if path:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise GhnError(f"cannot write '{path}': folder '{folder}' does not exist or is not writable")


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from ghn_jax.cli import atomic_write, enable_compilation_cache
    from ghn_jax import data as gdata
    from ghn_jax.eval import data as edata, models
    if args.batch_size < 1:
        raise GhnError("--batch-size must be >= 1")
    _check_writable(args.out)
    _check_writable(args.plot)
    archs = _arch_list(args)
    for a in archs:
        models.arch_name(a)                                  # unknown architecture: fail before loading anything
    cfg = edata.data_config(args.dataset, data_dir=args.data_dir, batch_size=args.batch_size, workers=args.workers)
    split = args.split or cfg.eval_split
    gdata.source(cfg.name, split, cfg.get("data_dir"))        # missing dataset: fail before loading the GHN
    k = edata.num_classes(cfg)
    base = edata.dataset_image_size(cfg)
    if args.arch:                                              # bad image sizes of named archs: fail early too
        for a in archs:
            if models.parse_arch(a)[0] == "zoo":
                size = edata.eval_size(cfg, args.image_size or models.default_image_size(a, base))
                models.build_target(a, k, size, adapt="never" if args.keep_stem else "auto")
    enable_compilation_cache()
    from ghn_jax.ghn.predictor import GHN
    t0 = time.perf_counter()
    ghn = GHN.from_pretrained(args.ckpt, trust_pickle=args.trust_pickle)
    check_num_classes(ghn, k, cfg.name, archs)
    print(f"GHN {args.ckpt} loaded in {time.perf_counter() - t0:.1f} s; evaluating {len(archs)} architecture(s) on "
          f"{cfg.name}/{split} (batch {args.batch_size}, BatchNorm with batch statistics, seed {args.seed})",
          flush=True)
    results = evaluate(ghn, archs, cfg, split=split, batch_size=args.batch_size, image_size=args.image_size,
                       seed=args.seed, max_batches=args.max_batches, adapt="never" if args.keep_stem else "auto",
                       on_error="raise" if len(archs) == 1 else "record",
                       log=lambda s: print(s, flush=True))
    print(format_table(results))
    if args.out:
        doc = {"ckpt": str(args.ckpt), "dataset": cfg.name, "split": split, "batch_size": args.batch_size,
               "seed": args.seed, "max_batches": args.max_batches, "image_size": args.image_size,
               "protocol": "predicted parameters, BatchNorm with test-batch statistics, shuffled seeded loader, "
                           "sample-weighted top-1/top-5 (design/ghn3-reference.md §4.7)",
               "summary": summary(results), "results": results}
        with atomic_write(args.out) as tmp:
            with open(tmp, "w") as f:
                json.dump(doc, f, indent=1)
        print(f"wrote {args.out}")
    if args.plot:
        from ghn_jax.eval.plots import accuracy_bars
        accuracy_bars(results, args.plot, title=f"{os.path.basename(str(args.ckpt))} on {cfg.name}/{split} "
                                                f"(predicted parameters)")
        print(f"wrote {args.plot}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
