"""Pieces shared by the PYSKL-family graph networks (ST-GCN++, CTR-GCN).

Both networks (as PYSKL, github.com/kennymckormick/pyskl, builds them) normalise the raw
skeleton with one BatchNorm over joints x coordinates (x persons for CTR-GCN), run ten
graph/temporal blocks over every person as its own sample, and classify the features averaged
over frames, joints and then persons with one linear layer (PYSKL's ``GCNHead``). The graph is
the layout's "spatial" partition (self links, inward and outward bones, column-normalised, as
:func:`skelact.models.graph.partitioned_adjacency` builds it), wired as PYSKL wires the layout
(:data:`PYSKL_WIRING`), so for NTU's and COCO's layouts it is PYSKL's ``Graph(mode='spatial')``
exactly (``tests/test_pyskl_models.py``); every other layout uses its own bones.

Attribute names follow PYSKL's state-dict layout (``backbone.*``, ``cls_head.fc_cls``), so
PYSKL checkpoints load by the identity key map. Every layer PYSKL calls as a module (convs,
norms, activations, pooling) is called as a module here too, with the same shapes, and nothing
else is, so ``ptflops`` counts PYSKL's figures.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from skelact.layouts import Layout, is_builtin
from skelact.models.graph import partitioned_adjacency
from skelact.models.registry import Dims, ModelError

__all__ = [
    "STAGE_CHANNELS",
    "GCNHead",
    "GCNRecognizer",
    "GRAPHS",
    "InputNorm",
    "PYSKL_WIRING",
    "TemporalConv",
    "kaiming_fan_out",
    "layout_graph",
]

#: (out channels, temporal stride) of the ten blocks after the first: channels double and time
#: halves at blocks 5 and 8 (PYSKL's ``inflate_stages = down_stages = [5, 8]``, base 64).
STAGE_CHANNELS: tuple[tuple[int, int], ...] = (
    (64, 1), (64, 1), (64, 1), (128, 2), (128, 1), (128, 1), (256, 2), (256, 1), (256, 1),
)  # fmt: skip
BASE_CHANNELS = 64
FEATURES = 256

#: Where PYSKL's graph of a built-in layout differs from the layout's bones: joint -> the parent
#: PYSKL gives it. PYSKL's ``nturgb+d`` hangs each hand tip on the hand (pyskl/utils/graph.py),
#: where SkelAct's ``ntu25`` (ST-GCN's and MMAction2's list, which Dynamic GCN is exact to)
#: hangs it on the thumb. COCO's graphs agree; other layouts have no PYSKL graph.
PYSKL_WIRING: dict[str, dict[str, str]] = {
    "ntu25": {"left_hand_tip": "left_hand", "right_hand_tip": "right_hand"},
}
#: The ``graph`` option: ``pyskl`` (PYSKL's wiring where it has one) or the ``layout``'s bones.
GRAPHS = ("pyskl", "layout")


def graph_bones(layout: Layout, graph: str) -> tuple[tuple[int, int], ...]:
    """(child, parent) pairs the graph is built from: the layout's, rewired per ``graph``."""
    if graph not in GRAPHS:
        raise ModelError(f"graph={graph!r} is not one of {', '.join(GRAPHS)}")
    rewired = PYSKL_WIRING.get(layout.name, {}) if graph == "pyskl" and is_builtin(layout) else {}
    parent = {layout.index(child): layout.index(p) for child, p in rewired.items()}
    return tuple((child, parent.get(child, p)) for child, p in layout.inward)


def layout_graph(dims: Dims, model: str, graph: str = "pyskl") -> torch.Tensor:
    """The 3 x V x V float32 spatial graph of the model's layout; refuses another joint count.

    Why refuse: a graph over other joints than the data's would train silently but wrongly.
    """
    layout = dims.layout
    if dims.num_joints != layout.num_joints:
        raise ModelError(
            f"{model} builds its graph from layout {layout.name!r} ({layout.num_joints} joints), "
            f"so num_joints={dims.num_joints} does not fit: give the layout of the data "
            "(layout=<built-in name or layout .yaml file>)"
        )
    adjacency = partitioned_adjacency(graph_bones(layout, graph), layout.num_joints)
    return torch.tensor(adjacency, dtype=torch.float32)


def kaiming_fan_out(conv: nn.Conv2d) -> None:
    """PYSKL's ``conv_init``: Kaiming-normal weights (fan-out, ReLU gain), zero bias."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    nn.init.zeros_(conv.bias)


def constant_bn(bn: nn.modules.batchnorm._BatchNorm, scale: float) -> None:
    """PYSKL's ``bn_init``: weight ``scale``, bias 0."""
    nn.init.constant_(bn.weight, scale)
    nn.init.zeros_(bn.bias)


class TemporalConv(nn.Module):
    """A ``k x 1`` convolution along time (dilated, strided), a BatchNorm, dropout.

    ``norm=False`` leaves the norm out (an identity, as PYSKL's ``norm=None``). The padding keeps
    ``ceil(T / stride)`` frames for any dilation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 9,
        stride: int = 1,
        dilation: int = 1,
        norm: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        pad = (dilation * (kernel_size - 1)) // 2
        self.conv = nn.Conv2d(
            in_channels, out_channels, (kernel_size, 1), (stride, 1), (pad, 0), (dilation, 1)
        )
        self.bn: nn.Module = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.drop = nn.Dropout(dropout, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.bn(self.conv(x)))


class InputNorm(nn.Module):
    """BatchNorm of the raw input per (joint, coordinate) -- and per person with ``per_person``
    -- over time; ``N x C x T x V x M`` in, ``(N*M) x C x T x V`` out (persons as samples).

    ST-GCN++ shares the statistics between persons (PYSKL's ``data_bn_type='VC'``); CTR-GCN keeps
    one set per person slot (``'MVC'``), so its checkpoints fix the person count.
    """

    def __init__(self, in_channels: int, num_joints: int, num_persons: int, per_person: bool):
        super().__init__()
        self.per_person = per_person
        width = in_channels * num_joints * (num_persons if per_person else 1)
        self.data_bn = nn.BatchNorm1d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = x.shape
        # feature index = (m *) V*C + v*C + c, PYSKL's order
        x = x.float().permute(0, 4, 3, 1, 2)
        x = self.data_bn(x.reshape(n if self.per_person else n * m, -1, t))
        return x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)


class GCNHead(nn.Module):
    """Mean over frames and joints, then over persons, then a linear classifier.

    The pooling is written as means, not as a module: PYSKL builds its pooling module inside
    ``forward``, so mmcv/ptflops never count it, and neither must we.
    """

    def __init__(self, num_classes: int, num_persons: int, in_channels: int = FEATURES) -> None:
        super().__init__()
        self.num_persons = num_persons
        self.fc_cls = nn.Linear(in_channels, num_classes)
        nn.init.normal_(self.fc_cls.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc_cls.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nm, c = x.shape[:2]
        pooled = x.mean(dim=(2, 3)).view(nm // self.num_persons, self.num_persons, c)
        return self.fc_cls(pooled.mean(dim=1))


class GCNRecognizer(nn.Module):
    """Backbone + head under PYSKL's names (``backbone``, ``cls_head``)."""

    def __init__(self, backbone: nn.Module, cls_head: GCNHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.cls_head = cls_head
        self.skelact_spec: dict[str, Any] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cls_head(self.backbone(x))
