"""Graph extraction speed: tracing vs SPD/assembly, against the reference's full build.

    python benchmarks/graph_speed.py [--archs resnet50,vit_b_16,...] [--repeats 3]

For each arch: one cold call (first in the process for that arch), then the median of
`--repeats` warm calls, split into JAX tracing (make_jaxpr of init), graph rules (the
jaxpr pass), and SPD/assembly. The reference figures are the original PyTorch code's
`Graph(...)` + `GraphBatch(...)` on this 2-core machine (idle, median of 3; from
../shared/ghn3_ref/summary.json). Prints a JSON summary as its last line.
"""
import argparse
import json
import statistics
import time

REFERENCE_S = {"resnet50": 0.339, "vit_b_16": 0.787, "swin_t": 1.154}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", default="resnet50,vit_b_16,swin_t,efficientnet_v2_l")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    t_import = time.perf_counter()
    from ghn_jax.graph import build_graph
    t_import = time.perf_counter() - t_import

    results = {}
    for arch in args.archs.split(","):
        cold = {}
        build_graph(arch, timings=cold)
        runs = []
        for _ in range(args.repeats):
            t = {}
            g = build_graph(arch, timings=t)
            runs.append(t)
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        ref = REFERENCE_S.get(arch)
        row = {"nodes": g.n_nodes, "cold_total_s": round(cold["total"], 4),
               **{f"{k}_s": round(v, 4) for k, v in med.items()}}
        if ref:
            row["reference_s"] = ref
            row["speedup_total"] = round(ref / med["total"], 2)
            row["speedup_spd_assembly"] = round(ref / med["assembly"], 1)
        results[arch] = row
        print(f"{arch:18s} N={g.n_nodes:4d}  total {med['total']:.3f} s (jaxpr {med['jaxpr']:.3f}, "
              f"rules {med['rules']:.3f}, spd+assembly {med['assembly']:.4f})  cold {cold['total']:.3f} s"
              + (f"  reference {ref:.3f} s -> x{ref / med['total']:.2f} whole, "
                 f"x{ref / med['assembly']:.0f} spd+assembly" if ref else ""))
    print(json.dumps({"benchmark": "graph_speed", "import_s": round(t_import, 3), "archs": results}))


if __name__ == "__main__":
    main()
