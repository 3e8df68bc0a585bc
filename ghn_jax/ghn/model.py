"""The GHN-3 hypernetwork in Flax (design/ghn3-reference.md §2).

    node types, shape indices, SPD  ->  embed + shape encoding  ->  Graphormer stack
    ->  final LayerNorm  ->  per-node decoders (conv / class / 1-D / class bias)

`GHN3.__call__` embeds a padded batch of graphs; the decoders are separate methods so
that each group of nodes (by decoder and spatial window) is decoded in one call.
Parameter names follow the torch checkpoint's module names (see ghn_jax/ghn/checkpoint.py).
"""
import math
from typing import Optional, Tuple

import jax
import jax.numpy as jnp
import flax.linen as nn

from ghn_jax.ghn.shape_encoder import table_sizes
from ghn_jax.graph.primitives import NUM_PRIMITIVES

MASK_VALUE = -32768.0          # the reference masks attention logits by replacement
MAX_DEGREE = 100
MAX_INPUT_DIST = 1000
EDGE_TABLE = 257
EDGE_OFFSET = 2                # edge index = distance + 2 (2 means "no edge")


def _ln(name):
    return nn.LayerNorm(epsilon=1e-5, name=name)


def _embed_init(width):
    """PyTorch trunc_normal_(std=width**-0.5) with absolute bounds [-2, 2] (§2.12)."""
    std = width ** -0.5

    def init(key, shape, dtype=jnp.float32):
        lo, hi = -2.0 / std, 2.0 / std
        return std * jax.random.truncated_normal(key, lo, hi, shape, dtype)
    return init


def _dense(features, fan_in, name=None, use_bias=True, small=False):
    """torch.nn.Linear's default init (U(+-1/sqrt(fan_in))); `small`: weight/5, bias 0 (§2.12)."""
    bound = 1.0 / math.sqrt(fan_in)

    def w_init(key, shape, dtype=jnp.float32):
        w = jax.random.uniform(key, shape, dtype, -bound, bound)
        return w / 5.0 if small else w

    def b_init(key, shape, dtype=jnp.float32):
        if small:
            return jnp.zeros(shape, dtype)
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return nn.Dense(features, use_bias=use_bias, kernel_init=w_init, bias_init=b_init, name=name)


class GraphormerLayer(nn.Module):
    """Pre-LN transformer layer with additive edge bias (§2.3); layer 0 owns the structure."""
    hid: int
    heads: int
    first: bool

    @nn.compact
    def __call__(self, x, spd, valid, bias=None):
        # x (B, M, hid) f32; spd (B, M, M) int32; valid (B, M) bool; bias (B, M, M, H) or None
        hid, h = self.hid, self.heads
        if self.first:
            one = (spd == 1)
            indeg = jnp.minimum(one.sum(1), MAX_DEGREE)          # column sums: in-degree of j
            outdeg = jnp.minimum(one.sum(2), MAX_DEGREE)
            dist = jnp.minimum(spd[:, 0, :], MAX_INPUT_DIST)
            x = x + nn.Embed(MAX_DEGREE + 1, hid, embedding_init=_embed_init(hid),
                             name="centrality_embed_in")(indeg)
            x = x + nn.Embed(MAX_DEGREE + 1, hid, embedding_init=_embed_init(hid),
                             name="centrality_embed_out")(outdeg)
            x = x + nn.Embed(MAX_INPUT_DIST + 1, hid, embedding_init=_embed_init(hid),
                             name="input_dist_embed")(dist)
            x = x * valid[..., None]
            bias = self.edge_bias(spd)
        y = _ln("ln1")(x)
        b, m, _ = x.shape
        dh = hid // h
        qkv = _dense(3 * hid, hid, "to_qkv", use_bias=False)(y).reshape(b, m, 3, h, dh)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        logits = jnp.einsum("bihc,bjhc->bhij", q, k) * (dh ** -0.5)
        logits = logits + jnp.transpose(bias, (0, 3, 1, 2))
        mask2 = valid[:, None, :, None] & valid[:, None, None, :]
        logits = jnp.where(mask2, logits, MASK_VALUE)
        attn = jax.nn.softmax(logits, axis=-1)
        o = jnp.einsum("bhij,bjhc->bihc", attn, v).reshape(b, m, hid)
        x = x + _dense(hid, hid, "to_out")(o)
        y = _ln("ln2")(x)
        y = _dense(4 * hid, hid, "ff_0")(y)
        y = _dense(hid, 4 * hid, "ff_3")(jax.nn.gelu(y, approximate=False))
        return x + y, bias

    def edge_bias(self, spd):
        """(B, M, M, H): MLP(concat(T[d_ij + 2], T[d_ji + 2])) for every ordered pair.

        Distances take at most 51 values and one direction of a DAG pair is always 0, so
        the MLP is evaluated once per distinct (forward, backward) pair and gathered:
        identical values, without a (B, M, M, 2 hid) intermediate.
        """
        hid = self.hid
        table = nn.Embed(EDGE_TABLE, hid, embedding_init=_embed_init(hid), name="edge_embed")
        n = _PAIR_LIMIT
        e = table(jnp.arange(n) + EDGE_OFFSET)                     # (51, hid)
        pair = jnp.concatenate([jnp.repeat(e[:, None], n, 1), jnp.repeat(e[None, :], n, 0)], -1)
        hmid = jax.nn.relu(_dense(hid, 2 * hid, "proj_e_0")(pair))  # (51, 51, hid)
        lut = _dense(self.heads, hid, "proj_e_2")(hmid)            # (51, 51, H)
        fwd = jnp.minimum(spd, _PAIR_LIMIT - 1)
        bwd = jnp.minimum(jnp.swapaxes(spd, 1, 2), _PAIR_LIMIT - 1)
        return lut[fwd, bwd]


_PAIR_LIMIT = 51   # distances 0 (no edge) .. 50 (ve cutoff)


class ConvDecoder(nn.Module):
    """ConvDecoder3 (§2.5a): fc -> ReLU -> window -> per-pixel MLP -> (Co, Ci, h, w).

    GHN-3 reads windows around the centre of the S x S map, GHN-2 (centre=False) from
    its top-left corner.
    """
    hid: int
    max_shape: Tuple[int, int, int, int]
    num_classes: int
    centre: bool = True

    def setup(self):
        co, ci, s, _ = self.max_shape
        h4 = 4 * self.hid
        self.fc_0 = _dense(h4 * s * s, self.hid)
        self.conv_0 = _dense(8 * self.hid, h4)
        self.conv_2 = _dense(co * ci, 8 * self.hid, small=True)
        self.class_layer_predictor_1 = _dense(self.num_classes, co, small=True)

    def window_map(self, z, rows: Tuple[int, int], cols: Tuple[int, int]):
        """(n, hid) -> (n, h, w, 4hid): relu(fc_0(z)) on the window rows x cols of the S x S map.

        fc_0's outputs are the S x S map's pixels, so a window is a subset of its columns;
        computing only those gives the same dot products at a fraction of the work and
        memory, forward and backward (a 7x7 window is 49 of 256 pixels at S = 16).
        """
        _, _, s, _ = self.max_shape
        h4, n = 4 * self.hid, z.shape[0]
        (r0, r1), (c0, c1) = rows, cols
        if self.is_initializing() or (rows, cols) == ((0, s), (0, s)):
            f = jax.nn.relu(self.fc_0(z)).reshape(n, h4, s, s)[:, :, r0:r1, c0:c1]
        else:
            p = self.fc_0.variables["params"]
            k = p["kernel"].reshape(-1, h4, s, s)[:, :, r0:r1, c0:c1]
            b = p["bias"].reshape(h4, s, s)[:, r0:r1, c0:c1]
            z, k, b = nn.dtypes.promote_dtype(z, k, b)
            f = (z @ k.reshape(k.shape[0], -1) + b.reshape(-1)).reshape(n, h4, r1 - r0, c1 - c0)
            f = jax.nn.relu(f)
        return jnp.transpose(f, (0, 2, 3, 1))

    def features(self, z, rows: Tuple[int, int], cols: Tuple[int, int]):
        """(n, hid) -> (n, Co, Ci, h, w) over the spatial window rows x cols of the S x S map."""
        co, ci, _, _ = self.max_shape
        n = z.shape[0]
        f = self.window_map(z, rows, cols)                          # (n, h, w, 4hid)
        g = self.conv_2(jax.nn.relu(self.conv_0(f)))                # (n, h, w, Co*Ci)
        h, w = g.shape[1:3]
        return jnp.transpose(g.reshape(n, h, w, co, ci), (0, 3, 4, 1, 2))

    def __call__(self, z, rows, cols):
        return self.features(z, rows, cols)

    def pixel_hidden(self, z, slot, r, c, box: Optional[Tuple[Tuple[int, int], Tuple[int, int]]] = None):
        """(P, 8hid): the per-pixel MLP's hidden layer at chosen pixels; z (n, hid), slot/r/c (P,).

        Pixel p is row r[p], column c[p] of node slot[p]'s S x S map, so the MLP runs only
        where a window needs it. box: static ((r0, r1), (c0, c1)) holding every pixel
        (`assign.pixel_box`); fc_0 is evaluated on it only. Pixels outside it (padding)
        read its border.
        """
        _, _, s, _ = self.max_shape
        (r0, r1), (c0, c1) = box if box is not None else ((0, s), (0, s))
        f = self.window_map(z, (r0, r1), (c0, c1))                  # (n, h, w, 4hid)
        fp = f[slot, jnp.clip(r - r0, 0, r1 - r0 - 1), jnp.clip(c - c0, 0, c1 - c0 - 1)]   # (P, 4hid)
        return jax.nn.relu(self.conv_0(fp))

    def pixel_block(self, h, a: int, b: int):
        """(P, 8hid) -> (P, a*b): only outputs o*Ci + i with o < a, i < b of the last layer.

        A target with few channels (a 3-channel stem, a 1-row positional embedding) needs a
        small corner of the Co x Ci output; each output is the same dot product as in the
        full layer, so the values are unchanged.
        """
        co, ci = self.max_shape[:2]
        if (a, b) == (co, ci):
            return self.conv_2(h)
        k = self.conv_2.variables["params"]["kernel"]               # (8hid, Co*Ci)
        bias = self.conv_2.variables["params"]["bias"]
        k = k.reshape(k.shape[0], co, ci)[:, :a, :b].reshape(k.shape[0], a * b)
        return h @ k + bias.reshape(co, ci)[:a, :b].reshape(a * b)

    def classifier(self, z):
        """(n, hid) -> (n, K, Ci): the centre pixel mapped through the class predictor."""
        _, _, s, _ = self.max_shape
        c = s // 2 if self.centre else 0
        g = self.features(z, (c, c + 1), (c, c + 1))[..., 0, 0]     # (n, Co, Ci)
        g = jnp.transpose(g, (0, 2, 1))                             # (n, Ci, Co)
        return jnp.transpose(self.class_layer_predictor_1(jax.nn.relu(g)), (0, 2, 1))


class GatedGNN(nn.Module):
    """GHN-2's message passing (§2.11): one forward then one backward sweep of GRU updates.

    At node v (in sweep order) the message is  sum_{u: d(u,v)=1} mlp(h_u)
    + sum_{u: 1<=d(u,v)<=50} mlp_ve(h_u) / d(u,v)  over predecessors (forward sweep) or
    successors (backward sweep), then h_v = GRUCell(m, h_v). Updates are sequential, so a
    lax.scan carries the states and the neighbours' messages, refreshed row by row.
    """
    hid: int

    @nn.compact
    def __call__(self, x, spd, valid):
        # x (M, hid) f32; spd (M, M) int; valid (M,) bool
        hid = self.hid
        mlp = _MLP2(hid, name="mlp")
        mlp_ve = _MLP2(hid, name="mlp_ve")
        gru = _TorchGRUCell(hid, name="gru")
        m = x.shape[0]
        d = spd.astype(jnp.float32)
        a1 = (spd == 1).astype(jnp.float32)
        ave = jnp.where((spd >= 1) & (spd <= 50), 1.0 / jnp.maximum(d, 1.0), 0.0)

        def sweep(h, order, fwd):
            p, q = mlp(h), mlp_ve(h)

            def step(carry, v):
                h, p, q = carry
                w1 = a1[:, v] if fwd else a1[v, :]
                wv = ave[:, v] if fwd else ave[v, :]
                msg = w1 @ p + wv @ q
                new = gru(msg, h[v])
                keep = valid[v]
                hv = jnp.where(keep, new, h[v])
                h = h.at[v].set(hv)
                p = p.at[v].set(jnp.where(keep, mlp(hv), p[v]))
                q = q.at[v].set(jnp.where(keep, mlp_ve(hv), q[v]))
                return (h, p, q), None
            (h, _, _), _ = jax.lax.scan(step, (h, p, q), order)
            return h

        h = sweep(x, jnp.arange(m), True)
        return sweep(h, jnp.arange(m)[::-1], False)


class _MLP2(nn.Module):
    """Linear(hid -> hid/2) - ReLU - Linear(hid/2 -> hid) - ReLU (ReLU after the last too)."""
    hid: int

    @nn.compact
    def __call__(self, x):
        x = jax.nn.relu(_dense(self.hid // 2, self.hid, "fc_0")(x))
        return jax.nn.relu(_dense(self.hid, self.hid // 2, "fc_2")(x))


class _TorchGRUCell(nn.Module):
    """torch.nn.GRUCell (gate order r, z, n): params weight_ih/hh (3h, h), bias_ih/hh (3h,)."""
    hid: int

    @nn.compact
    def __call__(self, x, h):
        hid = self.hid
        bound = 1.0 / math.sqrt(hid)
        init = lambda k, s, d=jnp.float32: jax.random.uniform(k, s, d, -bound, bound)
        w_ih = self.param("weight_ih", init, (3 * hid, hid))
        w_hh = self.param("weight_hh", init, (3 * hid, hid))
        b_ih = self.param("bias_ih", init, (3 * hid,))
        b_hh = self.param("bias_hh", init, (3 * hid,))
        gi = w_ih @ x + b_ih
        gh = w_hh @ h + b_hh
        r = jax.nn.sigmoid(gi[:hid] + gh[:hid])
        z = jax.nn.sigmoid(gi[hid:2 * hid] + gh[hid:2 * hid])
        n = jnp.tanh(gi[2 * hid:] + r * gh[2 * hid:])
        return (1.0 - z) * n + z * h


class GHN3(nn.Module):
    """GHN-3 (hid, layers, heads, max_shape=(Co, Ci, S, S), num_classes K).

    is_ghn2=True gives GHN-2 as the GHN-3 code base runs it: GatedGNN message passing
    instead of the Graphormer, and top-left decoder windows.
    """
    hid: int = 64
    layers: int = 3
    heads: int = 8
    max_shape: Tuple[int, int, int, int] = (64, 64, 16, 16)
    num_classes: int = 1000
    layernorm: bool = True
    is_ghn2: bool = False

    def setup(self):
        hid = self.hid
        n_ch, n_s = table_sizes(self.num_classes, self.max_shape[2])
        self.embed = nn.Embed(NUM_PRIMITIVES, hid, embedding_init=_embed_init(hid))
        self.embed_channel = nn.Embed(n_ch, hid // 4, embedding_init=_embed_init(hid // 4))
        self.embed_spatial = nn.Embed(n_s, hid // 4, embedding_init=_embed_init(hid // 4))
        if self.is_ghn2:
            # one GatedGNN per graph of the batch, sharing parameters
            self.gated_gnn = nn.vmap(GatedGNN, variable_axes={"params": None},
                                     split_rngs={"params": False})(hid)
        else:
            self.gnn = [GraphormerLayer(hid, self.heads, i == 0) for i in range(self.layers)]
        if self.layernorm:
            self.ln = nn.LayerNorm(epsilon=1e-5)
        self.decoder = ConvDecoder(hid, tuple(self.max_shape), self.num_classes, centre=not self.is_ghn2)
        max_ch = max(self.max_shape[0], self.max_shape[1])
        self.decoder_1d_0 = _dense(2 * hid, hid)
        self.decoder_1d_2 = _dense(2 * max_ch, 2 * hid, small=True)
        self.bias_class_1 = _dense(self.num_classes, max_ch)

    def __call__(self, node_types, shape_ind, spd, valid):
        """Node embeddings (B, M, hid) f32 after the final LayerNorm.

        node_types (B, M) int32; shape_ind (B, M, 4) int32; spd (B, M, M) int (distances,
        0 = none); valid (B, M) bool.
        """
        spd = spd.astype(jnp.int32)
        x = self.embed(node_types)
        se = jnp.concatenate([self.embed_channel(shape_ind[..., 0]), self.embed_channel(shape_ind[..., 1]),
                              self.embed_spatial(shape_ind[..., 2]), self.embed_spatial(shape_ind[..., 3])], -1)
        self.sow("intermediates", "x_embed", x)
        x = (x + se) * valid[..., None]
        self.sow("intermediates", "x_shape_enc", x)
        if self.is_ghn2:
            x = self.gated_gnn(x, spd, valid)
        else:
            bias = None
            for layer in self.gnn:
                x, bias = layer(x, spd, valid, bias)
        self.sow("intermediates", "x_gnn", x)
        if self.layernorm:
            x = self.ln(x)
        return x

    # -- decoders (each applied to a group of node embeddings z: (n, hid)) -----------------
    def decode_conv(self, z, rows, cols):
        return self.decoder(z, rows, cols)

    def decode_pixel_blocks(self, z, slot, r, c, group_sizes, blocks, box=None):
        """Pixels in consecutive groups of `group_sizes`, group g decoded to its (a, b) block."""
        h = self.decoder.pixel_hidden(z, slot, r, c, box)
        out, start = [], 0
        for size, (a, b) in zip(group_sizes, blocks):
            out.append(self.decoder.pixel_block(h[start:start + size], a, b))
            start += size
        return out

    def decode_class(self, z):
        return self.decoder.classifier(z)

    def decode_1d(self, z):
        """(n, hid) -> (n, 2, max_ch): row 0 norm weights, row 1 biases."""
        u = self.decoder_1d_2(jax.nn.relu(self.decoder_1d_0(z)))
        return u.reshape(z.shape[0], 2, -1)

    def decode_class_bias(self, z):
        """(n, hid) -> (n, K): the classifier bias (row 1 of bias_class(decode_1d))."""
        u = self.decode_1d(z)
        return self.bias_class_1(jax.nn.relu(u))[:, 1]

    def init_all(self, node_types, shape_ind, spd, valid):
        """Touches every submodule (for `init`)."""
        x = self(node_types, shape_ind, spd, valid)
        z = x[0, :1]
        s = self.max_shape[2]
        return (self.decode_conv(z, (0, s), (0, s)), self.decode_class(z), self.decode_1d(z),
                self.decode_class_bias(z))
