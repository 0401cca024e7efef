"""Skeleton graphs as adjacency stacks for graph convolutions.

Dynamic GCN starts its learnable static adjacency from three partitions of the skeleton graph
(the "agcn" strategy of 2s-AGCN / MMAction2): self links, bones pointing inwards to the centre
joint and bones pointing outwards. The bone list comes from :mod:`skelact.layouts`, so the
graph and every other consumer of the layout agree by construction.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from skelact.layouts import NTU25, Layout


def edges_to_matrix(edges: Iterable[tuple[int, int]], num_joints: int) -> np.ndarray:
    """Adjacency with ``A[dst, src] = 1`` for each ``(src, dst)`` edge.

    Storing the edge target in the row makes ``X @ A`` (features X of shape ... x V) gather, for
    each target joint, the features of the joints that point at it.
    """
    matrix = np.zeros((num_joints, num_joints), dtype=np.float64)
    for src, dst in edges:
        if not (0 <= src < num_joints and 0 <= dst < num_joints):
            raise ValueError(f"edge ({src}, {dst}) is outside 0..{num_joints - 1}")
        matrix[dst, src] = 1.0
    return matrix


def normalize_columns(matrix: np.ndarray) -> np.ndarray:
    """Divide every non-empty column by its sum (``A @ D^-1``), leaving empty columns at zero.

    Column normalisation makes ``X @ A`` average over a joint's neighbours instead of summing, so
    feature scale does not depend on joint degree.
    """
    sums = matrix.sum(axis=0)
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    return matrix * scale[None, :]


def partitioned_adjacency(
    inward: Iterable[tuple[int, int]],
    num_joints: int,
) -> np.ndarray:
    """The 3 x V x V "agcn" stack: identity, normalised inward and normalised outward bones.

    ``inward`` holds (child, parent) pairs pointing towards the centre joint; the outward
    partition reverses them.
    """
    inward = tuple(inward)
    outward = tuple((parent, child) for child, parent in inward)
    self_links = np.eye(num_joints, dtype=np.float64)
    incoming = normalize_columns(edges_to_matrix(inward, num_joints))
    outgoing = normalize_columns(edges_to_matrix(outward, num_joints))
    return np.stack((self_links, incoming, outgoing))


def layout_adjacency(layout: Layout) -> np.ndarray:
    """The partitioned adjacency (3 x V x V, float64) of a layout's bone tree."""
    return partitioned_adjacency(layout.inward, layout.num_joints)


def ntu_adjacency() -> np.ndarray:
    """The NTU RGB+D 25-joint partitioned adjacency (3 x 25 x 25, float64)."""
    return layout_adjacency(NTU25)
