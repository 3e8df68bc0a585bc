"""python -m ghn_jax.graph --arch ARCH [--out FILE.npz] [--plot FILE.png]

Traces a zoo architecture into its GHN-3 graph and prints a summary: nodes per
primitive, parameters predicted and not predicted.
"""
import argparse
import sys
import time

import numpy as np

from ghn_jax.cli import atomic_write, run_cli


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ghn_jax.graph", description=__doc__.split("\n")[2])
    ap.add_argument("--arch", help="zoo architecture, torchvision name (e.g. resnet50, vit_b_16)")
    ap.add_argument("--out", help="write node_types, spd, param_names, torch_names, shapes (.npz)")
    ap.add_argument("--plot", help="draw the graph to this PNG file")
    ap.add_argument("--num-classes", type=int, default=1000)
    ap.add_argument("--image-size", type=int, default=None,
                    help="trace at this image size (default: the zoo's, 224 or 299)")
    ap.add_argument("--list", action="store_true", help="list the zoo architectures and exit")
    args = ap.parse_args(argv)

    from ghn_jax import zoo
    from ghn_jax.graph import build_graph
    if args.list:
        print("\n".join(zoo.list_models()))
        return 0
    if not args.arch:
        ap.error("--arch is required (or --list)")
    shape = None if args.image_size is None else (2, args.image_size, args.image_size, 3)
    t0 = time.perf_counter()
    g = build_graph(args.arch, shape, num_classes=args.num_classes)
    dt = time.perf_counter() - t0
    s = g.summary()
    print(f"{s['arch']}: {s['nodes']} nodes, {s['edges']} edges, built in {dt:.2f} s")
    for prim, count in sorted(s["primitives"].items(), key=lambda kv: -kv[1]):
        print(f"  {prim:9s} {count}")
    print(f"params predicted: {s['predicted']} tensors; not predicted: {len(s['not_predicted'])}"
          + (" (" + ", ".join(s["not_predicted"][:6]) + (" ..." if len(s["not_predicted"]) > 6 else "") + ")"
             if s["not_predicted"] else ""))
    if args.out:
        with atomic_write(args.out) as f:
            np.savez(f, **g.to_npz_dict())
        print(f"wrote {args.out}")
    if args.plot:
        from ghn_jax.graph.plot import plot_graph
        with atomic_write(args.plot) as f:
            plot_graph(g, f)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
