"""Dynamic GCN: parity with the reference, size and cost figures, the skeleton graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from skelact.layouts import NTU25
from skelact.models import ModelError, build_model, reference_key_map
from skelact.models.dgcn import KEY_MAP, pointwise
from skelact.models.graph import edges_to_matrix, normalize_columns, ntu_adjacency


def _reference_keys(reference_dir: Path) -> dict[str, tuple[int, ...]]:
    rows = (reference_dir / "state_dicts" / "dgcn.tsv").read_text().splitlines()[1:]
    keys = {}
    for row in rows:
        key, shape, _ = row.split("\t")
        keys[key] = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
    return keys


def build_dgcn(**options) -> torch.nn.Module:
    return build_model("dgcn", **options)


def _mapped(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renames = reference_key_map(build_dgcn())
    return {renames[k]: v for k, v in state_dict.items()}


@pytest.fixture(scope="module")
def reference_model(reference_dir: Path) -> torch.nn.Module:
    checkpoint = torch.load(reference_dir / "parity" / "dgcn_ckpt.pth", weights_only=True)
    model = build_dgcn()
    model.load_state_dict(_mapped(checkpoint["state_dict"]), strict=True)
    return model.eval()


def test_state_dict_matches_reference_layout(reference_dir: Path) -> None:
    expected = _reference_keys(reference_dir)
    own = {k: tuple(v.shape) for k, v in _mapped(build_dgcn().state_dict()).items()}
    assert own == expected


def test_parity_with_reference_logits(reference_dir: Path, reference_model) -> None:
    io = torch.load(reference_dir / "parity" / "dgcn_io.pt", weights_only=True)
    with torch.no_grad():
        logits = reference_model(io["input"])
    error = (logits - io["logits"]).norm() / io["logits"].norm()
    assert error < 1e-4, f"relative error {error:.3g}"


def test_parameter_count_is_exact() -> None:
    model = build_dgcn()
    assert sum(p.numel() for p in model.parameters()) == 3_748_945


def test_ptflops_matches_reference_counter() -> None:
    from ptflops import get_model_complexity_info

    macs, params = get_model_complexity_info(
        build_dgcn(),
        (3, 64, 25, 2),
        as_strings=False,
        print_per_layer_stat=False,
        backend="pytorch",
        backend_specific_config={"count_functional": False},
    )
    assert round(macs / 1e9, 3) == 2.395
    assert params == 3_748_945


def test_spec_records_build_options() -> None:
    model = build_dgcn(num_classes=7, clip_len=32, alpha=0.5, lambda_=0.3)
    assert model.skelact_spec == {
        "name": "dgcn",
        "options": {
            "num_classes": 7,
            "clip_len": 32,
            "num_joints": 25,
            "num_persons": 2,
            "in_channels": 3,
            "layout": "ntu25",
            "alpha": 0.5,
            "lambda_": 0.3,
        },
    }
    rebuilt = build_dgcn(**model.skelact_spec["options"])
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    gcn = model.backbone.agcn_networks[0].gcn
    assert gcn.lamb.item() == pytest.approx(0.3)
    # 25 joints -> int(25 * 0.5) = 12 -> 6 with alpha 0.5
    assert model.backbone.agcn_networks[5].proj_mat.shape == (25, 12)
    assert model.backbone.agcn_networks[9].proj_mat.shape == (12, 6)


def test_forward_with_other_classes_and_clip_length() -> None:
    torch.manual_seed(0)
    model = build_dgcn(num_classes=11, clip_len=32, num_persons=2)
    x = torch.randn(3, 3, 32, 25, 2)
    model.train()
    out = model(x)
    assert out.shape == (3, 11)
    out.sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        single = model(x[:1])
        batched = model(x)
    torch.testing.assert_close(single, batched[:1], rtol=1e-4, atol=1e-5)


def test_one_person_input() -> None:
    model = build_dgcn(num_persons=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 25, 1)).shape == (2, 60)


def test_rejects_bad_options() -> None:
    with pytest.raises(
        ModelError, match=r"layout 'ntu25' \(25 joints\), so num_joints=17 does not fit"
    ):
        build_dgcn(num_joints=17)
    with pytest.raises(ValueError, match="clip_len"):
        build_dgcn(clip_len=30)


def test_initialisation_follows_reference() -> None:
    torch.manual_seed(0)
    model = build_dgcn()
    gcn = model.backbone.agcn_networks[1].gcn
    # The gcn output BN starts almost closed, so each block starts near its residual path.
    assert torch.all(gcn.bn.weight == 1e-6)
    # Temporal and channel attention start as constant gates (zero weights).
    assert torch.all(gcn.attention.conv_ta.weight == 0)
    assert torch.all(gcn.attention.fc2c.weight == 0)
    # Static adjacency starts at the skeleton graph on 25 joints and near zero after pooling.
    torch.testing.assert_close(gcn.PA.data, model.backbone.A)
    pooled = model.backbone.agcn_networks[6].gcn.PA
    assert torch.all(pooled == 1e-6)
    # Branch-wise normal init: std sqrt(2 / (out * in * 3)) for the 64 -> 64 subset convs.
    weights = torch.cat([c.weight.flatten() for c in gcn.conv_d])
    assert weights.std().item() == pytest.approx((2 / (64 * 64 * 3)) ** 0.5, rel=0.05)
    assert model.cls_head.fc.weight.std().item() == pytest.approx(0.01, rel=0.1)
    assert torch.all(model.cls_head.fc.bias == 0)


def test_key_map_is_identity() -> None:
    # The module tree is named after the reference's: no rename rule, every key maps to itself.
    assert KEY_MAP == ()
    assert all(own == ref for own, ref in reference_key_map(build_dgcn()).items())


# --- the graph -----------------------------------------------------------------------------


def test_skeleton_bones_match_reference_graph() -> None:
    # MMAction2's 'ntu-rgb+d' layout lists these 1-based (child, parent) links.
    reference_1based = [
        (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
        (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
        (20, 19), (22, 23), (23, 8), (24, 25), (25, 12),
    ]  # fmt: skip
    assert list(NTU25.bones) == [(i - 1, j - 1) for i, j in reference_1based]
    assert NTU25.center == 20


def test_adjacency_structure() -> None:
    a = ntu_adjacency()
    assert a.shape == (3, 25, 25)
    np.testing.assert_array_equal(a[0], np.eye(25))
    inward, outward = a[1] > 0, a[2] > 0
    # Outward is inward reversed, and the skeleton is a tree: 24 bones, no self links.
    np.testing.assert_array_equal(inward, outward.T)
    assert inward.sum() == 24 and not np.any(np.diag(inward))
    # Undirected skeleton is symmetric.
    np.testing.assert_array_equal(inward | outward, (inward | outward).T)
    for part in a[1:]:
        sums = part.sum(axis=0)
        nonempty = sums > 0
        np.testing.assert_allclose(sums[nonempty], 1.0)
        np.testing.assert_array_equal(sums[~nonempty], 0.0)
    # Every joint but the centre has exactly one parent: inward columns are exactly those joints.
    has_parent = a[1].sum(axis=0) > 0
    assert has_parent.sum() == 24 and not has_parent[NTU25.center]
    # The centre has four children (spine, neck, two shoulders): each weighs 1/4 going outward.
    np.testing.assert_allclose(a[2][a[2][:, NTU25.center] > 0, 20], 0.25)


def test_graph_helpers() -> None:
    m = edges_to_matrix([(0, 1), (2, 1)], 3)
    np.testing.assert_array_equal(m, [[0, 0, 0], [1, 0, 1], [0, 0, 0]])
    np.testing.assert_allclose(
        normalize_columns(np.array([[1.0, 0.0], [3.0, 0.0]])), [[0.25, 0], [0.75, 0]]
    )
    with pytest.raises(ValueError, match="outside"):
        edges_to_matrix([(0, 5)], 3)


def test_buffer_holds_graph() -> None:
    model = build_dgcn()
    torch.testing.assert_close(model.backbone.A, torch.tensor(ntu_adjacency(), dtype=torch.float32))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_close_to_float32(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    model = build_dgcn(num_classes=10, clip_len=32)
    x = torch.randn(2, 3, 32, 25, 2)
    # Calibrate the BN statistics as training would: an untrained net in eval mode lets
    # activations grow past float16's range, which says nothing about the implementation.
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None
    with torch.no_grad():
        model.train()(x)
        model.eval()
        expected = model(x)
        with torch.autocast("cpu", dtype=dtype):
            got = model(x)
    error = (got.float() - expected).norm() / expected.norm()
    assert error < (0.05 if dtype == torch.bfloat16 else 0.01), f"relative error {error:.3g}"


def test_pointwise_gemm_matches_the_convolution_and_its_gradients() -> None:
    """The CPU training fast path of DGCN's 1x1 convs: same values and gradients as ``conv``."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(24, 40, 1).train()
    x = torch.randn(3, 24, 16, 25, requires_grad=True)
    grads = []
    for run in (conv, lambda t: pointwise(conv, t)):
        conv.zero_grad()
        x.grad = None
        out = run(x)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads.append((out.detach(), x.grad.clone(), conv.weight.grad.clone(), conv.bias.grad))
    for plain, fast in zip(*grads, strict=True):
        torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)


def test_pointwise_is_the_convolution_itself_outside_cpu_training() -> None:
    """Evaluation, no-grad and non-contiguous inputs take ``conv`` (hooks fire, bit-exact)."""
    conv = torch.nn.Conv2d(8, 16, 1)
    calls = []
    conv.register_forward_hook(lambda *_: calls.append(1))
    x = torch.randn(2, 8, 5, 25)
    with torch.no_grad():
        assert torch.equal(pointwise(conv, x), conv(x))
    conv.eval()
    assert torch.equal(pointwise(conv, x), conv(x))
    conv.train()
    pointwise(conv, x.transpose(2, 3))  # not contiguous
    assert len(calls) == 5
    pointwise(conv, x)  # the GEMM: the module's forward is not called
    assert len(calls) == 5
