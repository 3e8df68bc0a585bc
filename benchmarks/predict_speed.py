"""Predict speed: graph, GHN, tiling and write, warm and cold, for GHN-T and GHN-XL.

    python benchmarks/predict_speed.py [--archs resnet50,vit_b_16] [--sizes t,xl] [--repeats 3]

"predict" is graph + GHN + tiling into the model's variables (what the reference's
figures cover); writing the file is reported apart. warm: median of --repeats calls after
one warm-up in this process (the graph is cached in memory). cold: the first call in a
fresh process (a subprocess), compile included, with empty caches (graphs, serialised
programs, compilation), and again with all of them warm; median of --cold-repeats
processes each. GHN-T is the seeded reference GHN-3-T when ../shared is
present, otherwise a random one of the same size (timing does not depend on the values);
GHN-XL has random weights (654M parameters), as in the reference's measurement.
Reference seconds (original PyTorch code, fp32, this 2-core machine): GHN-T graph + GHN
0.34 + 0.095 (resnet50), 0.79 + 0.15 (vit_b_16); GHN-XL 0.61 + 7.5 (resnet50),
0.80 + 6.2 (vit_b_16). Prints a JSON summary as its last line.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REFERENCE = {("t", "resnet50"): (0.34, 0.095), ("t", "vit_b_16"): (0.79, 0.15),
             ("xl", "resnet50"): (0.61, 7.5), ("xl", "vit_b_16"): (0.80, 6.2)}
# The reference's first call (graph + GHN) in a fresh process, measured on this idle 2-core
# machine with the original code (ghn3 b3289ac, ppuda 4673a42, torch 2.14.1, 2 threads):
# GHN-T = the seeded GHN-3-T of ../shared, GHN-XL = a random GHN3(hid=384, layers=24, heads=16).
REFERENCE_COLD = {("t", "resnet50"): 0.411, ("t", "vit_b_16"): 0.948,
                  ("xl", "resnet50"): 6.879, ("xl", "vit_b_16"): 7.472}
SIZES = {"t": dict(hid=64, layers=3, heads=8, max_shape=(64, 64, 16, 16)),
         "xl": dict(hid=384, layers=24, heads=16, max_shape=(384, 384, 16, 16))}
SHARED_T = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "ghn3_ref", "ghn3_tiny_seed0.joblib")


def make_ghn(size):
    import jax
    from ghn_jax.ghn.checkpoint import GHNConfig, abstract_params
    from ghn_jax.ghn.predictor import GHN
    if size == "t" and os.path.exists(SHARED_T):
        return GHN.from_pretrained(SHARED_T, trust_pickle=True)
    cfg = GHNConfig(**SIZES[size])
    shapes = abstract_params(cfg)
    keys = iter(jax.random.split(jax.random.PRNGKey(0), len(jax.tree_util.tree_leaves(shapes))))
    params = jax.tree_util.tree_map(lambda s: 0.02 * jax.random.normal(next(keys), s.shape, s.dtype), shapes)
    return GHN(cfg, params)


def one_call(ghn, arch, out_dir):
    from ghn_jax.export.files import save_flax
    t0 = time.perf_counter()
    variables, report = ghn.predict(arch)
    t1 = time.perf_counter()
    save_flax(os.path.join(out_dir, f"{arch}.safetensors"), variables)
    sec = dict(report.seconds)
    sec["predict"] = t1 - t0               # graph + GHN + tiling: comparable to the reference's figure
    sec["write"] = time.perf_counter() - t1
    return sec


def worker(size, arch, cache):
    """The first call in this fresh process (cold)."""
    from ghn_jax.cli import enable_compilation_cache
    if cache:
        enable_compilation_cache(cache)
    ghn = make_ghn(size)
    with tempfile.TemporaryDirectory() as d:
        sec = one_call(ghn, arch, d)
    print(json.dumps(sec))


def cold(size, arch, cache):
    env = dict(os.environ, GHN_JAX_CACHE=cache)        # graph and compilation caches in `cache`
    r = subprocess.run([sys.executable, __file__, "--worker", size, arch, os.path.join(cache, "jax")],
                       capture_output=True, text=True, check=True, env=env)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", default="resnet50,vit_b_16")
    ap.add_argument("--sizes", default="t,xl")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cold-repeats", type=int, default=3, help="fresh processes per cold figure (median)")
    ap.add_argument("--worker", nargs=3)
    args = ap.parse_args()
    if args.worker:
        return worker(*args.worker)
    results = {}
    for size in args.sizes.split(","):
        ghn = make_ghn(size)
        for arch in args.archs.split(","):
            with tempfile.TemporaryDirectory() as d:
                one_call(ghn, arch, d)
                runs = [one_call(ghn, arch, d) for _ in range(args.repeats)]
            warm = {k: round(statistics.median(r[k] for r in runs), 4) for k in runs[0]}
            empties, cached = [], []
            for _ in range(args.cold_repeats):     # fresh processes vary more than warm calls
                with tempfile.TemporaryDirectory() as cache:
                    empties.append(cold(size, arch, cache))
                    cached.append(cold(size, arch, cache))
            cold_empty = {k: statistics.median(r[k] for r in empties) for k in empties[0]}
            cold_cached = {k: statistics.median(r[k] for r in cached) for k in cached[0]}
            row = {"warm": warm, "cold_first_call": round(cold_empty["predict"], 3),
                   "cold_with_caches": round(cold_cached["predict"], 3),
                   "cold_write": round(cold_empty["write"], 3)}
            line = (f"GHN-{size.upper():2s} {arch:10s} warm {warm['predict']:.3f} s (graph {warm['graph']:.3f}, "
                    f"GHN {warm['ghn']:.3f}, tiling {warm['tiling']:.3f}; write {warm['write']:.3f}); "
                    f"cold {cold_empty['predict']:.2f} s, cold with caches {cold_cached['predict']:.2f} s")
            if (size, arch) in REFERENCE:              # reference figures exist for these only
                ref = sum(REFERENCE[(size, arch)])
                ref_cold = REFERENCE_COLD[(size, arch)]
                row.update({"reference_graph_plus_ghn": ref, "reference_first_call": ref_cold,
                            "warm_speedup": round(ref / warm["predict"], 2),
                            "cold_ratio_to_reference_first_call": round(cold_empty["predict"] / ref_cold, 2),
                            "cached_cold_ratio_to_reference_first_call": round(cold_cached["predict"] / ref_cold, 2)})
                line += (f"; reference {ref:.2f} s warm, {ref_cold:.2f} s first call -> warm x{ref / warm['predict']:.1f}, "
                         f"cold {cold_empty['predict'] / ref_cold:.2f}x, cached cold {cold_cached['predict'] / ref_cold:.2f}x")
            results[f"ghn3-{size}/{arch}"] = row
            print(line, flush=True)
        del ghn
    print(json.dumps({"benchmark": "predict_speed", "results": results}))


if __name__ == "__main__":
    main()
