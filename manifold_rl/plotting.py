"""Plots of trajectories on S² and in the plane (matplotlib, object API: no global state)."""

from __future__ import annotations

from typing import Dict

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_lasa_rollouts"]

_COLORS = ["tab:blue", "tab:orange", "tab:green", "tab:red"]


def plot_lasa_rollouts(
    path,
    demos: torch.Tensor,
    heldout: torch.Tensor,
    rollouts: Dict[str, torch.Tensor],
    *,
    embedding=None,
    title: str = "",
) -> None:
    """Save a PNG of the training demonstrations, the held-out one and the rollouts.

    For trajectories on S² (``d = 3``) the left panel draws them on the sphere and the
    right panel maps them back to the LASA plane with ``embedding.from_manifold``; for
    planar trajectories (``d = 2``) there is a single planar panel.

    Args:
        path: output PNG file.
        demos: ``(N, T, d)`` training demonstrations.
        heldout: ``(T, d)`` held-out demonstration.
        rollouts: name -> ``(T', d)`` executed trajectory.
        embedding: the LASA embedding (``from_manifold``) for the planar panel.
        title: figure title.
    """
    d = demos.shape[-1]
    spherical = d == 3
    fig = Figure(figsize=(11 if spherical else 6, 5.2))
    FigureCanvasAgg(fig)
    if spherical:
        ax3 = fig.add_subplot(1, 2, 1, projection="3d")
        u, v = np.mgrid[0 : 2 * np.pi : 72j, 0 : np.pi : 36j]
        ax3.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.85", linewidth=0.4, axlim_clip=True)
        for demo in demos:
            ax3.plot(*demo.T.numpy(), color="0.5", linewidth=0.8)
        ax3.plot(*heldout.T.numpy(), "k--", linewidth=1.5, label="held-out demo")
        for c, (name, r) in zip(_COLORS, rollouts.items()):
            ax3.plot(*r.T.numpy(), color=c, linewidth=1.8, label=name)
        pts = torch.cat([demos.reshape(-1, 3), heldout] + [r.reshape(-1, 3) for r in rollouts.values()]).numpy()
        lo, hi = pts.min(0), pts.max(0)
        c, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 0.1) * 1.1
        ax3.set_xlim(c[0] - half, c[0] + half)
        ax3.set_ylim(c[1] - half, c[1] + half)
        ax3.set_zlim(c[2] - half, c[2] + half)
        ax3.view_init(elev=55, azim=-60)
        ax3.set_box_aspect((1, 1, 1))
        ax3.set_title("on S²")
        ax3.legend(loc="lower left", fontsize=8)
        ax = fig.add_subplot(1, 2, 2)
        to_plane = (lambda x: embedding.from_manifold(x)) if embedding is not None else (lambda x: x[..., :2])
    else:
        ax = fig.add_subplot(1, 1, 1)
        to_plane = (lambda x: embedding.from_manifold(x)) if embedding is not None else (lambda x: x)
    for i, demo in enumerate(demos):
        p = to_plane(demo).numpy()
        ax.plot(p[:, 0], p[:, 1], color="0.6", linewidth=0.8, label="training demos" if i == 0 else None)
    p = to_plane(heldout).numpy()
    ax.plot(p[:, 0], p[:, 1], "k--", linewidth=1.5, label="held-out demo")
    for c, (name, r) in zip(_COLORS, rollouts.items()):
        p = to_plane(r).numpy()
        ax.plot(p[:, 0], p[:, 1], color=c, linewidth=1.8, label=name)
    ax.plot([0], [0], "k*", markersize=10)
    ax.set_aspect("equal")
    ax.set_title("mapped back to the LASA plane" if spherical else "in R²")
    ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
