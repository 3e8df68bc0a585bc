"""Drawing an ArchGraph: layered by depth from the input, nodes coloured by primitive."""
import numpy as np

from ghn_jax.graph.primitives import PRIMITIVES


def node_depths(spd: np.ndarray) -> np.ndarray:
    """Longest real-edge path from any source to each node (nodes are topologically ordered)."""
    n = spd.shape[0]
    depth = np.zeros(n, np.int64)
    real = spd == 1
    for v in range(1, n):
        p = np.nonzero(real[:v, v])[0]
        if p.size:
            depth[v] = depth[p].max() + 1
    return depth


def plot_graph(graph, path: str, dpi: int = 120) -> None:
    """Writes a PNG of the graph's real edges; virtual (SPD) edges are not drawn."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depth = node_depths(graph.spd)
    y = np.zeros(graph.n_nodes)
    for d in np.unique(depth):
        idx = np.nonzero(depth == d)[0]
        y[idx] = np.arange(len(idx)) - (len(idx) - 1) / 2.0
    x = depth.astype(float)
    width = max(6.0, min(40.0, 0.12 * (depth.max() + 1)))
    height = max(4.0, min(20.0, 0.5 * (np.abs(y).max() * 2 + 2)))
    fig, ax = plt.subplots(figsize=(width, height))
    src, dst = np.nonzero(graph.spd == 1)
    for u, v in zip(src, dst):
        ax.plot([x[u], x[v]], [y[u], y[v]], color="0.75", lw=0.5, zorder=1)
    cmap = plt.get_cmap("tab20")
    for t in np.unique(graph.node_types):
        idx = graph.node_types == t
        ax.scatter(x[idx], y[idx], s=18, color=cmap(int(t) % 20), label=PRIMITIVES[t], zorder=2,
                   edgecolors="k", linewidths=0.3)
    ax.set_title(f"{graph.name}: {graph.n_nodes} nodes, {len(src)} edges")
    ax.set_xlabel("depth from input")
    ax.set_yticks([])
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
