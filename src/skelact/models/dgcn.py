"""Dynamic GCN (Ye et al., ACM MM 2020) as released in SkelAct, exact to the reference.

A stack of graph-convolution blocks over the skeleton's joint graph (built from the model's
layout, :func:`skelact.models.graph.layout_adjacency`; NTU's 25 joints by default). Each block
mixes joints with three learnable static adjacencies (initialised from the skeleton's
self/inward/outward partitions) plus a per-sample adjacency predicted by a small
context-encoding network (CeN), then applies a temporal convolution. Two learnable joint
projections shrink the graph (25 -> 15 -> 9 joints for alpha = 0.6) as the clip is strided in
time.

Module and attribute names follow the reference's state-dict layout (``backbone.agcn_networks.*``,
``cls_head.fc``), so SkelAct/MMAction2 checkpoints load with the identity key map
(:data:`KEY_MAP`, empty). The forward pass is reorganised for speed without changing the result:
the three static graph aggregations of a block are plain GEMMs on views of the input, and the
spatial/temporal/channel attention is folded into a single rescaling of the features. Every
counted layer (convs, norms, activations, pooling) is still called as a module with the
reference's shapes, so ``ptflops`` reports the reference's figures.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from skelact.layouts import NTU25
from skelact.models.graph import layout_adjacency, ntu_adjacency
from skelact.models.registry import Dims, KeyRules, ModelError, register_model

__all__ = ["DGCN", "KEY_MAP", "DGCNHead", "DGCNRecognizer", "build_dgcn"]

#: Own key -> reference key: no rule, the module tree is named after the reference's.
KEY_MAP: KeyRules = ()

TEMPORAL_KERNEL = 9
NUM_SUBSETS = 3


def _kaiming_fan_out(conv: nn.Conv2d) -> None:
    """mmcv's ``kaiming_init`` (normal, fan-out, ReLU gain, zero bias) used across DGCN's convs."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _constant_bn(bn: nn.modules.batchnorm._BatchNorm, weight: float) -> None:
    nn.init.constant_(bn.weight, weight)
    nn.init.zeros_(bn.bias)


def pointwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for a 1x1, stride-1 ``conv``; a CPU training step runs it as one batched GEMM.

    Why: on an NCHW tensor a 1x1 convolution is ``W @ x[n]`` per sample, a plain GEMM on the
    contiguous ``C x (T*V)`` view; ``baddbmm`` (bias as the added term) runs forward plus backward
    faster than oneDNN's convolution for DGCN's shapes (a whole DGCN train step 5-7 % faster in an
    interleaved A/B on a 2-core AVX2 machine), and DGCN has four such convs per graph layer.
    Values differ from the convolution by float rounding only. Evaluation and inference (no
    grad), other devices, autocast and non-contiguous inputs call ``conv`` itself, so evaluated
    and exported logits, the module's hooks and ptflops see the plain convolution.
    """
    if (
        not (conv.training and torch.is_grad_enabled())
        or x.device.type != "cpu"
        or x.dtype != conv.weight.dtype
        or not x.is_contiguous()
        or torch.is_autocast_enabled("cpu")
    ):
        return conv(x)
    n, c, t, v = x.shape
    out = conv.out_channels
    bias = conv.bias.view(1, out, 1).expand(n, out, t * v)
    weight = conv.weight.view(1, out, c).expand(n, out, c)
    return torch.baddbmm(bias, weight, x.view(n, c, t * v)).view(n, out, t, v)


class ContextEncoding(nn.Module):
    """CeN: predicts one V x V adjacency per sample from the whole feature map.

    Channels, then time, are squeezed to one value by 1x1 convolutions, leaving a V-vector that a
    1x1 conv expands to V*V entries; columns are then L2-normalised.
    """

    def __init__(self, in_channels: int, num_joints: int, clip_len: int) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.conv_c = nn.Conv2d(in_channels, 1, kernel_size=1)
        self.conv_t = nn.Conv2d(clip_len, 1, kernel_size=1)
        self.conv_v = nn.Conv2d(num_joints, num_joints * num_joints, kernel_size=1)
        self.bn = nn.BatchNorm2d(num_joints)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Squeezing C and then T channels into one value sums thousands of activations, which
        # overflows float16; the whole path is tiny after conv_c, so it always runs in float32.
        with torch.autocast(device_type=x.device.type, enabled=False):
            n = x.shape[0]
            squeezed = self.conv_c(x.float())  # n 1 T V
            squeezed = self.conv_t(squeezed.transpose(1, 2))  # n T 1 V -> n 1 1 V
            squeezed = self.bn(squeezed.reshape(n, self.num_joints, 1, 1))
            adjacency = self.conv_v(squeezed).view(n, self.num_joints, self.num_joints)
            # Divide each column by its L2 norm (the reference does exactly this, no epsilon).
            return adjacency * adjacency.square().sum(dim=1, keepdim=True).rsqrt()


class STCAttention(nn.Module):
    """Spatial, then temporal, then channel attention, each as ``y <- y * (1 + gate)``.

    The three gates are computed from means of the progressively rescaled features, exactly as the
    reference does, but those means are derived from one joint-weighted reduction of the input
    instead of materialising the two intermediate feature maps; the output is a single product.
    """

    def __init__(self, channels: int, num_joints: int) -> None:
        super().__init__()
        self.sigmoid = nn.Sigmoid()
        self.relu = nn.ReLU()
        self.conv_ta = nn.Conv1d(channels, 1, TEMPORAL_KERNEL, padding=TEMPORAL_KERNEL // 2)
        joint_kernel = num_joints - 1 if num_joints % 2 == 0 else num_joints
        self.conv_sa = nn.Conv1d(channels, 1, joint_kernel, padding=(joint_kernel - 1) // 2)
        self.fc1c = nn.Linear(channels, channels // 2)
        self.fc2c = nn.Linear(channels // 2, channels)
        # Temporal and channel gates start at sigmoid(0) = 0.5 everywhere (zero weights).
        nn.init.zeros_(self.conv_ta.weight)
        nn.init.zeros_(self.conv_ta.bias)
        nn.init.xavier_normal_(self.conv_sa.weight)
        nn.init.zeros_(self.conv_sa.bias)
        nn.init.kaiming_normal_(self.fc1c.weight)
        nn.init.zeros_(self.fc1c.bias)
        nn.init.zeros_(self.fc2c.weight)
        nn.init.zeros_(self.fc2c.bias)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        n, c, t, v = y.shape
        spatial = 1 + self.sigmoid(self.conv_sa(y.mean(dim=2)))  # n 1 V
        # Mean over joints of y * spatial, as a matvec over the joint axis: n C T. The weights are
        # divided by V first so that float16 sums cannot overflow where the mean does not.
        joint_pooled = torch.matmul(y, (spatial / v).view(n, 1, v, 1)).view(n, c, t)
        temporal = 1 + self.sigmoid(self.conv_ta(joint_pooled))  # n 1 T
        pooled = (joint_pooled * temporal).mean(dim=2)  # n C
        channel = 1 + self.sigmoid(self.fc2c(self.relu(self.fc1c(pooled))))  # n C
        scale_tv = temporal.view(n, 1, t, 1) * spatial.view(n, 1, 1, v)
        return y * scale_tv * channel.view(n, c, 1, 1)


class DynamicGraphConv(nn.Module):
    """Graph convolution with three static subsets plus the CeN's dynamic adjacency.

    ``y = sum_k conv_k(x A_k) + lamb * conv_cen(x A_dyn)`` then BN, a (projected) residual, ReLU and
    the STC attention. ``lamb`` is learnable and initialised to the configured lambda.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        adjacency: torch.Tensor,
        lamb: float,
        num_joints: int,
        clip_len: int,
    ) -> None:
        super().__init__()
        self.lamb = nn.Parameter(torch.full((1,), float(lamb)))
        if adjacency.shape[1] == num_joints:
            self.PA = nn.Parameter(adjacency.clone().float())
        else:
            # Reduced graphs (after a joint projection) have no skeleton prior: near-zero start.
            self.PA = nn.Parameter(torch.full((NUM_SUBSETS, num_joints, num_joints), 1e-6))
        self.cen = ContextEncoding(in_channels, num_joints, clip_len)
        self.conv_cen = nn.Conv2d(in_channels, out_channels, 1)
        self.down: nn.Module
        if in_channels != out_channels:
            self.down = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels)
            )
        else:
            self.down = nn.Identity()
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                _kaiming_fan_out(module)
            elif isinstance(module, nn.BatchNorm2d):
                _constant_bn(module, 1.0)
        self.conv_d = nn.ModuleList(
            nn.Conv2d(in_channels, out_channels, 1) for _ in range(NUM_SUBSETS)
        )
        branch_std = math.sqrt(2.0 / (out_channels * in_channels * NUM_SUBSETS))
        for conv in self.conv_d:
            nn.init.normal_(conv.weight, 0.0, branch_std)
            nn.init.zeros_(conv.bias)
        self.bn = nn.BatchNorm2d(out_channels)
        _constant_bn(self.bn, 1e-6)  # the block starts close to its residual path
        self.relu = nn.ReLU()
        self.attention = STCAttention(out_channels, num_joints)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        # One (N*C*T) x V by V x V GEMM per static subset, on a view of x: each product is a
        # contiguous N C T V tensor that its 1x1 conv reads as it is. (A single broadcast
        # matmul over the stacked subsets looks cheaper but makes torch copy x three times
        # and transpose the result: ~12% of a DGCN train step on a 2-core AVX2 machine.)
        flat = x.reshape(n * c * t, v)
        pa_0, pa_1, pa_2 = self.PA.unbind(0)  # unbind: backward stacks, no zero-filled buffers
        dynamic = torch.matmul(x.reshape(n, c * t, v), self.cen(x)).view(n, c, t, v)
        conv_0, conv_1, conv_2 = self.conv_d
        y = torch.addcmul(
            pointwise(conv_0, torch.mm(flat, pa_0).view(n, c, t, v)),
            pointwise(self.conv_cen, dynamic),
            self.lamb,
        )
        y = y + pointwise(conv_1, torch.mm(flat, pa_1).view(n, c, t, v))
        y = y + pointwise(conv_2, torch.mm(flat, pa_2).view(n, c, t, v))
        y = self.relu(self.bn(y) + self.down(x))
        return self.attention(y)


class DGCNBlock(nn.Module):
    """Dynamic graph conv, then a 9x1 temporal conv (optionally strided), plus a residual."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        adjacency: torch.Tensor,
        *,
        stride: int = 1,
        lamb: float = 1.0,
        num_joints: int = NTU25.num_joints,
        clip_len: int = 64,
        residual: bool = True,
    ) -> None:
        super().__init__()
        self.gcn = DynamicGraphConv(
            in_channels, out_channels, adjacency, lamb, num_joints, clip_len
        )
        self.tcn = nn.Sequential(
            nn.Conv2d(
                out_channels,
                out_channels,
                (TEMPORAL_KERNEL, 1),
                (stride, 1),
                (TEMPORAL_KERNEL // 2, 0),
            ),
            nn.BatchNorm2d(out_channels),
        )
        _kaiming_fan_out(self.tcn[0])
        _constant_bn(self.tcn[1], 1.0)
        self.has_residual = residual
        self.residual: nn.Module
        if not residual or (in_channels == out_channels and stride == 1):
            self.residual = nn.Identity()
        else:
            # Left at PyTorch's default initialisation, as in the reference.
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=(stride, 1)),
                nn.BatchNorm2d(out_channels),
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.tcn(self.gcn(x))
        if self.has_residual:
            y = y + self.residual(x)
        return self.relu(y)


class JointProject(nn.Module):
    """Learnable V_in x V_out joint pooling matrix followed by BN (graph coarsening)."""

    def __init__(self, channels: int, in_joints: int, out_joints: int) -> None:
        super().__init__()
        self.in_joints = in_joints
        self.out_joints = out_joints
        self.proj_mat = nn.Parameter(torch.empty(in_joints, out_joints))
        self.bn = nn.BatchNorm2d(channels)
        nn.init.kaiming_normal_(self.proj_mat)
        _constant_bn(self.bn, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(torch.matmul(x, self.proj_mat))

    def extra_repr(self) -> str:
        return f"in_joints={self.in_joints}, out_joints={self.out_joints}"


class DGCN(nn.Module):
    """The DGCN backbone: N x C x T x V x M skeletons -> (N*M) x 256 x T/4 x V'' features."""

    def __init__(
        self,
        in_channels: int = 3,
        *,
        num_joints: int = NTU25.num_joints,
        clip_len: int = 64,
        alpha: float = 0.6,
        lamb: float = 1.0,
        adjacency: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if adjacency is None:
            adjacency = torch.tensor(ntu_adjacency(), dtype=torch.float32)
        if adjacency.shape != (NUM_SUBSETS, num_joints, num_joints):
            raise ValueError(
                f"adjacency must be {NUM_SUBSETS} x {num_joints} x {num_joints} for "
                f"num_joints={num_joints}, got {tuple(adjacency.shape)}"
            )
        if clip_len % 4 != 0 or clip_len < 4:
            raise ValueError(f"clip_len must be a positive multiple of 4, got {clip_len}")
        v1 = num_joints
        v2 = int(v1 * alpha)
        v3 = int(v2 * alpha)
        if v3 < 1:
            raise ValueError(f"alpha={alpha} shrinks {num_joints} joints to none")
        self.register_buffer("A", adjacency.float())
        self.data_bn = nn.BatchNorm1d(in_channels * num_joints)
        t1, t2, t3 = clip_len, clip_len // 2, clip_len // 4

        def block(cin: int, cout: int, v: int, t: int, **kw: Any) -> DGCNBlock:
            return DGCNBlock(cin, cout, adjacency, lamb=lamb, num_joints=v, clip_len=t, **kw)

        self.agcn_networks = nn.ModuleList(
            (
                block(in_channels, 64, v1, t1, residual=False),
                block(64, 64, v1, t1),
                block(64, 64, v1, t1),
                block(64, 64, v1, t1),
                block(64, 128, v1, t1, stride=2),
                JointProject(128, v1, v2),
                block(128, 128, v2, t2),
                block(128, 128, v2, t2),
                block(128, 256, v2, t2, stride=2),
                JointProject(256, v2, v3),
                block(256, 256, v3, t3),
                block(256, 256, v3, t3),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = x.shape
        # Normalise per (person, joint, channel) over time, as BatchNorm1d on (N*M) x (V*C) x T.
        x = x.float().permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)
        x = self.data_bn(x)
        x = x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
        for layer in self.agcn_networks:
            x = layer(x)
        return x


class DGCNHead(nn.Module):
    """Global average pool, mean over persons, then a 1x1 conv classifier (as STGCNHead)."""

    def __init__(self, num_classes: int, in_channels: int = 256, num_persons: int = 2) -> None:
        super().__init__()
        self.num_persons = num_persons
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Conv2d(in_channels, num_classes, kernel_size=1)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        x = x.view(x.shape[0] // self.num_persons, self.num_persons, -1, 1, 1).mean(dim=1)
        return self.fc(x).flatten(1)


class DGCNRecognizer(nn.Module):
    """Backbone + head under the reference's attribute names (``backbone``, ``cls_head``)."""

    def __init__(self, backbone: DGCN, cls_head: DGCNHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.cls_head = cls_head
        self.skelact_spec: dict[str, Any] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cls_head(self.backbone(x))


@register_model("dgcn", clip_len=64, options={"alpha": 0.6, "lambda_": 1.0}, key_map=KEY_MAP)
def build_dgcn(dims: Dims, *, alpha: float, lambda_: float) -> DGCNRecognizer:
    """Build the Dynamic GCN recognizer with the reference's defaults (NTU 60, T = 64).

    ``alpha`` sets the joint reduction of each projection (25 -> 15 -> 9 at 0.6); ``lambda_``
    (``lamb`` in the reference) is the initial weight of the dynamic branch. The static graph is
    the layout's bone tree, so ``num_joints`` must be the layout's joint count: a graph of other
    joints than the data's would train silently but wrongly.
    """
    layout = dims.layout
    if dims.num_joints != layout.num_joints:
        raise ModelError(
            f"dgcn builds its graph from layout {layout.name!r} ({layout.num_joints} joints), "
            f"so num_joints={dims.num_joints} does not fit: give the layout of the data "
            "(layout=<built-in name or layout .yaml file>)"
        )
    adjacency = torch.tensor(layout_adjacency(layout), dtype=torch.float32)
    backbone = DGCN(
        dims.in_channels, num_joints=dims.num_joints, clip_len=dims.clip_len, alpha=alpha,
        lamb=lambda_, adjacency=adjacency,
    )  # fmt: skip
    return DGCNRecognizer(backbone, DGCNHead(dims.num_classes, 256, dims.num_persons))
