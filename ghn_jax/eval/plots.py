"""Plots of evaluation and fine-tuning results (matplotlib, Agg backend, atomic writes)."""
from typing import Any, Dict, List, Sequence

from ghn_jax.cli import atomic_write


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def accuracy_bars(results: Sequence[Dict[str, Any]], path: str, title: str = "") -> None:
    """Top-1 and top-5 accuracy (%) per architecture, in the given order."""
    plt = _pyplot()
    rows = [r for r in results if "top1" in r]
    names = [r["arch"] for r in rows]
    n = max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * n + 2), 4.5))
    xs = range(len(rows))
    w = 0.4
    ax.bar([x - w / 2 for x in xs], [r["top1"] for r in rows], w, label="top-1")
    ax.bar([x + w / 2 for x in xs], [r["top5"] for r in rows], w, label="top-5")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, rotation=60 if n > 4 else 0, ha="right" if n > 4 else "center", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend()
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def training_curves(steps: List[Dict[str, Any]], epochs: List[Dict[str, Any]], path: str, title: str = "") -> None:
    """Left: training loss per logged step window and per epoch. Right: accuracy per epoch
    (train top-1, test top-1 / top-5; epoch 0 is the initialisation)."""
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    if steps:
        a.plot([s["step"] for s in steps], [s["loss"] for s in steps], label="train loss (window)", alpha=0.7)
    ep = [e for e in epochs if e.get("train_loss") is not None]
    if ep:
        a.plot([e["step"] for e in ep], [e["train_loss"] for e in ep], "o-", label="train loss (epoch)")
    a.set_xlabel("step")
    a.set_ylabel("loss")
    a.grid(alpha=0.3)
    a.legend()
    for key, label in (("train_top1", "train top-1"), ("test_top1", "test top-1"), ("test_top5", "test top-5")):
        pts = [(e["epoch"], e[key]) for e in epochs if e.get(key) is not None]
        if pts:
            b.plot(*zip(*pts), "o-", label=label)
    b.set_xlabel("epoch")
    b.set_ylabel("accuracy (%)")
    b.grid(alpha=0.3)
    b.legend()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: str) -> None:
    plt = _pyplot()
    try:
        with atomic_write(path) as tmp:
            fig.savefig(tmp, dpi=110, format=path.rsplit(".", 1)[-1] if "." in path else "png")
    finally:
        plt.close(fig)
