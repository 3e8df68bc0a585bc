"""Offline end-to-end proof that our GHN learns (issue #6): scikit-learn's handwritten digits.

    python examples/digits_demo.py                      # ~34 min on 2 CPU cores (23 training, 11 evaluating)
    python examples/digits_demo.py --workdir /tmp/ghn_digits --seeds 0 1 2 --nets 10
    python examples/digits_demo.py --reduced            # ~10 min: the default suite's fixture GHN

Why digits: it is real image data (1,797 scanned handwritten digits, 10 classes) that ships
inside a PyPI package, so it works with no download; it becomes a TFDS dataset offline
(ghn_jax/data/digits.py, 1,259 train / 179 validation / 359 test images, upscaled to 32 px).

1. Trains a small GHN-3 (configs/digits_demo.py: hid 64, 3 layers) with `ghn_jax.train` on
   32 DeepNets-1M train-split networks (skipped if WORKDIR/ghn.safetensors exists).
2. Predicts the parameters of `--nets` held-out val-split networks it has never seen and
   evaluates them on the test split, BatchNorm with batch statistics (§4.7), no training.
3. Fine-tunes each of them for one epoch from GHN init and from random init (same recipe,
   ghn_jax.finetune, one run per seed) and evaluates on the test split.
Writes WORKDIR/demo.json, demo.md (the table) and demo.png, and prints the table.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHANCE = 10.0


def capped(spec, cfg):
    """The val network with the caps the GHN was trained under (channels, cells, fc width)."""
    from dataclasses import replace
    return replace(spec, num_classes=10, C=min(spec.C, cfg.deepnets.max_C),
                   n_cells=min(spec.n_cells, cfg.deepnets.max_n_cells), fc_dim=min(spec.fc_dim, cfg.deepnets.max_fc_dim))


def config(arg=None):
    """configs/digits_demo.py's get_config(arg) (configs/ is not a package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("digits_demo_config", os.path.join(ROOT, "configs", "digits_demo.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config(arg)


def train(workdir: str, data_dir: str, arg: str = "") -> float:
    if os.path.exists(os.path.join(workdir, "ghn.safetensors")):
        return 0.0
    t0 = time.time()
    config = os.path.join(ROOT, "configs", "digits_demo.py") + (f":{arg}" if arg else "")
    cmd = [sys.executable, "-m", "ghn_jax.train", "--config", config,
           "--workdir", workdir, f"--config.data.data_dir={data_dir}",
           f"--config.compilation_cache_dir={os.path.join(workdir, 'xla_cache')}"]
    subprocess.run(cmd, check=True, cwd=ROOT)
    return time.time() - t0


def compare(ghn, cfg, nets: int, seeds, log=lambda m: print(m, flush=True)):
    """The two claims on val-split networks 0..nets-1 (capped as in `cfg`): top-1 of the
    predicted parameters with no training, and after one epoch of fine-tuning from GHN init
    and from random init (same recipe, one run per seed). One dict per network."""
    from ghn_jax.deepnets import sample
    from ghn_jax.evaluate import evaluate
    from ghn_jax.finetune import finetune
    specs = [capped(sample("val", i), cfg) for i in range(nets)]
    predicted = evaluate(ghn, specs, cfg.data, split="test", batch_size=64, progress=False, log=None)
    rows = []
    for i, (spec, res) in enumerate(zip(specs, predicted)):
        row = {"net": f"val:{i}", "ops": sorted(set(spec.genotype.all_ops)), "ghn_no_training": res["top1"],
               "ghn_1_epoch": [], "random_no_training": [], "random_1_epoch": [],
               "ghn_1_epoch_train_loss": [], "random_1_epoch_train_loss": []}
        for seed in seeds:
            for init in ("ghn", "random"):
                out = finetune(spec, cfg.data, init=init, ghn=ghn if init == "ghn" else None, epochs=1, seed=seed,
                               progress=False, log=None)
                row[f"{init}_1_epoch"].append(out["final"]["top1"])
                row[f"{init}_1_epoch_train_loss"].append(out["epochs"][-1]["train_loss"])
                if init == "random":
                    row["random_no_training"].append(out["init_eval"]["top1"])
        rows.append(row)
        if log:
            log(f"val:{i}: GHN {row['ghn_no_training']:.1f}% -> {np.mean(row['ghn_1_epoch']):.1f}% after 1 epoch; "
                f"random {np.mean(row['random_no_training']):.1f}% -> {np.mean(row['random_1_epoch']):.1f}%")
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default="/tmp/ghn_digits_demo")
    p.add_argument("--data-dir", default=None, help="TFDS data_dir for the digits dataset (default: WORKDIR/tfds)")
    p.add_argument("--nets", type=int, default=10, help="held-out val-split networks")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--reduced", action="store_true", help="configs/digits_demo.py:reduced (a smaller GHN and "
                                                          "smaller networks, ~7 min of training)")
    args = p.parse_args(argv)
    arg = "reduced" if args.reduced else ""
    data_dir = args.data_dir or os.path.join(args.workdir, "tfds")
    os.makedirs(args.workdir, exist_ok=True)
    train_s = train(args.workdir, data_dir, arg)

    import ghn_jax
    cfg = config(arg or None)
    cfg.data.data_dir = data_dir

    ghn = ghn_jax.from_pretrained(os.path.join(args.workdir, "ghn.safetensors"))
    t0 = time.time()
    rows = compare(ghn, cfg, args.nets, args.seeds)
    eval_s = time.time() - t0
    keys = ("ghn_no_training", "random_no_training", "ghn_1_epoch", "random_1_epoch")
    per_net = {k: [float(np.mean(r[k])) for r in rows] for k in keys}
    summary = {k: {"mean": float(np.mean(v)), "std": float(np.std(v))} for k, v in per_net.items()}
    wins = sum(a > b for a, b in zip(per_net["ghn_1_epoch"], per_net["random_1_epoch"]))
    result = {"nets": rows, "summary": summary, "ghn_wins_after_1_epoch": wins, "seeds": args.seeds,
              "chance": CHANCE, "train_seconds": train_s, "eval_seconds": eval_s}
    with open(os.path.join(args.workdir, "demo.json"), "w") as f:
        json.dump(result, f, indent=1)
    lines = ["| init | no training: top-1 (%) | after 1 epoch: top-1 (%) |", "|---|---|---|"]
    for name, a, b in (("GHN (predicted)", "ghn_no_training", "ghn_1_epoch"),
                       ("random", "random_no_training", "random_1_epoch")):
        lines.append(f"| {name} | {summary[a]['mean']:.1f} ± {summary[a]['std']:.1f} | "
                     f"{summary[b]['mean']:.1f} ± {summary[b]['std']:.1f} |")
    lines.append(f"\n{len(rows)} held-out val-split networks, {len(args.seeds)} seeds each; mean ± std over "
                 f"networks; chance {CHANCE:.0f}%. GHN init ahead after one epoch on {wins} of {len(rows)}.")
    table = "\n".join(lines)
    with open(os.path.join(args.workdir, "demo.md"), "w") as f:
        f.write(table + "\n")
    print(table)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(9, 3.5))
    for j, (k, label) in enumerate(zip(keys, ("GHN, no training", "random, no training", "GHN + 1 epoch",
                                              "random + 1 epoch"))):
        ax.bar(x + (j - 1.5) * 0.2, per_net[k], 0.2, label=label)
    ax.axhline(CHANCE, color="k", lw=0.8, ls="--")
    ax.set_xticks(x, [r["net"] for r in rows])
    ax.set_ylabel("digits test top-1 (%)")
    ax.legend(ncol=4, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 1.18))
    fig.tight_layout()
    fig.savefig(os.path.join(args.workdir, "demo.png"), dpi=120)
    return result


if __name__ == "__main__":
    main()
