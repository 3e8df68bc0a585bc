"""Builds tests/data/ghn{3,2}_*_compact.npz from ../shared/ghn{3,2}_ref (run once, by hand).

    python tests/data/make_compact_fixtures.py [--shared ../shared]

The default test suite must check GHN-3 parity without ../shared, within a few MB. The
seeded GHN-3-T (27 MB) is mostly the conv decoder's `fc.0` (65536 outputs: 256 channels x
16 x 16 pixels) and `conv.2` (4096 = 64 x 64 outputs). This file keeps every GHN tensor
except those two, of which it keeps only the outputs that the selected reference tensors
need (the 3 x 3 window of fc.0: centre for GHN-3, top-left for GHN-2; the conv.2 outputs o*64+i of the selected convs),
plus, per architecture: the reference node embeddings (x_ln), a few 1-D predicted tensors,
and for mobilenet_v2 its depthwise and first conv weights. Other decoder outputs come out
wrong with the zero-filled weights and are not checked by the fast test.
"""
import argparse
import os

import numpy as np

GHN3_ARCHS = ["resnet18", "resnet50", "vit_b_16", "mobilenet_v2", "convnext_tiny", "densenet121",
              "efficientnet_b0", "swin_t", "regnet_y_400mf"]
GHN2_ARCHS = ["resnet18", "mobilenet_v2", "vit_b_16"]
S, CO, CI = 16, 64, 64


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
    args = ap.parse_args()
    build(os.path.join(args.shared, "ghn3_ref"), "ghn3_tiny_seed0.joblib", GHN3_ARCHS, (7, 8, 9),
          "ghn3_tiny_compact.npz")
    build(os.path.join(args.shared, "ghn2_ref"), "ghn2_seed0.joblib", GHN2_ARCHS, (0, 1, 2),
          "ghn2_compact.npz")


def build(ref_dir, ghn_file, archs, window, out_name):
    import joblib
    sd = {k: v.numpy() for k, v in joblib.load(os.path.join(ref_dir, ghn_file)).items()}
    hid = sd["embed.weight"].shape[1]
    out = {}
    # fc.0: outputs c*S*S + r*S + col for the 3x3 window.
    rows = np.array([c * S * S + r * S + col for c in range(4 * hid) for r in window for col in window])
    conv2_rows = set()
    for arch in archs:
        z = np.load(os.path.join(ref_dir, f"{arch}.npz"))
        out[f"{arch}/x_ln"] = z["ghn/x_ln"]
        names = [str(n) for n in z["meta/predicted_names"]]
        full = f"param/{names[0]}" in z.files
        one_d = [n for n in names if len(z[f"param_shape/{n}"]) == 1]
        pick = one_d[:: max(1, len(one_d) // 10)][:10] + one_d[-1:]
        if arch == "mobilenet_v2":
            convs = [n for n in names if n.endswith("weight") and len(z[f"param_shape/{n}"]) == 4
                     and (z[f"param_shape/{n}"][1] == 1 or n == "features.0.0.weight")]
            for n in convs:
                o, i = z[f"param_shape/{n}"][:2]
                conv2_rows.update(a * CI + b for a in range(min(o, CO)) for b in range(min(i, CI)))
            pick += convs[:6] + ["features.0.0.weight"]
        for n in dict.fromkeys(pick):
            if full:
                out[f"{arch}/param/{n}"] = z[f"param/{n}"]
            else:   # summary-form fixture: first 256 values and the norm
                out[f"{arch}/first256/{n}"] = z[f"param_first256/{n}"]
                out[f"{arch}/l2/{n}"] = z[f"param_l2/{n}"]
    conv2_rows = np.array(sorted(conv2_rows))
    for k, v in sd.items():
        if k == "decoder.fc.0.weight":
            out["ghn/decoder.fc.0.weight@rows"] = v[rows]
        elif k == "decoder.fc.0.bias":
            out["ghn/decoder.fc.0.bias@rows"] = v[rows]
        elif k == "decoder.conv.2.weight":
            out["ghn/decoder.conv.2.weight@rows"] = v[conv2_rows]
        elif k == "decoder.conv.2.bias":
            out["ghn/decoder.conv.2.bias@rows"] = v[conv2_rows]
        else:
            out[f"ghn/{k}"] = v
    out["rows/decoder.fc.0"] = rows.astype(np.int32)
    out["rows/decoder.conv.2"] = conv2_rows.astype(np.int32)
    out["shapes/decoder.fc.0.weight"] = np.array(sd["decoder.fc.0.weight"].shape)
    out["shapes/decoder.conv.2.weight"] = np.array(sd["decoder.conv.2.weight"].shape)
    path = os.path.join(os.path.dirname(__file__), out_name)
    np.savez_compressed(path, **out)
    print(f"wrote {path}: {os.path.getsize(path) / 1e6:.2f} MB, {len(out)} arrays")


if __name__ == "__main__":
    main()
