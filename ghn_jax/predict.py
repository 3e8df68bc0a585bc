"""python -m ghn_jax.predict --arch ARCH [--ckpt NAME|PATH] [--out FILE] [--format flax|torch]

Predicts all parameters of an architecture with a GHN and writes them for the Flax twin
(.safetensors / .msgpack) or for torchvision (.pt, loads with strict=True).
"""
import argparse
import os
import sys
import time

from ghn_jax.cli import run_cli
from ghn_jax.errors import GhnError


def _parser():
    from ghn_jax.ghn.hub import RELEASED
    ap = argparse.ArgumentParser(prog="python -m ghn_jax.predict",
                                 description="Predict the parameters of an architecture with a GHN.")
    ap.add_argument("--arch", required=True, help="zoo architecture (torchvision name, e.g. resnet50, vit_b_16)")
    ap.add_argument("--ckpt", default="ghn3xlm16",
                    help="GHN: " + "; ".join(f"{k} ({v})" for k, v in RELEASED.items() if k != "ghn2")
                    + "; or a path to a checkpoint (.pt/.joblib/.safetensors). Default ghn3xlm16 as in "
                    "the reference; use ghn3tm8 on small machines.")
    ap.add_argument("--trust-pickle", action="store_true",
                    help="allow unpickling torch/joblib checkpoints (pickles can run code)")
    ap.add_argument("--out", help="output file: .safetensors / .msgpack (Flax) or .pt (torchvision)")
    ap.add_argument("--format", choices=["flax", "torch"], help="override the format given by --out's suffix")
    ap.add_argument("--num-classes", type=int, default=None, help="classes of the model (default: the GHN's)")
    ap.add_argument("--tile-classifier", action="store_true",
                    help="allow --num-classes different from the GHN's (classifier tiled as in the reference)")
    ap.add_argument("--seed", type=int, default=0, help="rng seed (ViT class-token row, unpredicted params)")
    return ap


def _format(out: str, fmt: str) -> str:
    if fmt:
        return fmt
    if out.endswith(".pt") or out.endswith(".pth"):
        return "torch"
    if out.endswith((".safetensors", ".msgpack")):
        return "flax"
    raise GhnError(f"cannot tell the format of '{out}': use .safetensors / .msgpack (Flax) or .pt "
                   f"(torchvision), or pass --format")


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from ghn_jax.cli import enable_compilation_cache
    enable_compilation_cache()
    from ghn_jax import zoo
    from ghn_jax.ghn.predictor import GHN
    arch = zoo.canonical_name(args.arch)           # unknown names fail before any loading
    fmt = _format(args.out, args.format) if args.out else None
    if args.out:
        folder = os.path.dirname(os.path.abspath(args.out))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise GhnError(f"cannot write '{args.out}': folder '{folder}' does not exist or is not writable")
    t0 = time.perf_counter()
    ghn = GHN.from_pretrained(args.ckpt, trust_pickle=args.trust_pickle)
    t_load = time.perf_counter() - t0
    variables, report = ghn.predict(arch, num_classes=args.num_classes, rng=args.seed,
                                    tile_classifier=args.tile_classifier)
    t1 = time.perf_counter()
    if args.out:
        if fmt == "torch":
            from ghn_jax.export.torch_export import save_state_dict, to_torchvision_state_dict
            sd = to_torchvision_state_dict(arch, variables, report.predicted,
                                           args.num_classes or ghn.config.num_classes)
            save_state_dict(args.out, sd)
        else:
            from ghn_jax.export.files import save_flax
            save_flax(args.out, variables, {"arch": arch, "ckpt": str(args.ckpt)})
    t_write = time.perf_counter() - t1
    print(f"{arch}: {len(report.predicted)} tensors predicted, {len(report.not_predicted)} not predicted"
          + (f" ({', '.join(report.not_predicted[:4])}{' ...' if len(report.not_predicted) > 4 else ''})"
             if report.not_predicted else ""))
    print(f"total norm of predicted params: {report.total_norm:.4f}")
    sec = report.seconds
    print(f"time: load {t_load:.2f} s, graph {sec['graph']:.2f} s, GHN {sec['ghn']:.2f} s, "
          f"tiling {sec['tiling']:.2f} s, write {t_write:.2f} s")
    if args.out:
        print(f"wrote {args.out} ({fmt})")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
