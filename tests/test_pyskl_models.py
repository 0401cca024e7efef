"""ST-GCN++ and CTR-GCN against PYSKL: graph, state-dict layout, logits, parameters and FLOPs.

The reference numbers in ``tests/data/pyskl/`` were produced by running PYSKL's own model code
(its ``STGCN`` with the ++ settings and ``CTRGCN`` backbones, ``GCNHead``; commit in the JSON)
outside this repository, on weights and inputs drawn from seeded NumPy streams that
:func:`helpers.pyskl_fill` reproduces; only numbers and key/shape layouts are kept here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import pyskl_fill
from skelact.layouts import get_layout
from skelact.models import (
    ModelError,
    build_from_checkpoint,
    build_model,
    export_mmaction_checkpoint,
    load_checkpoint,
    to_mmaction_state_dict,
)
from skelact.models.complexity import complexity_of, model_complexity
from skelact.models.gcn_parts import layout_graph
from skelact.models.graph import layout_adjacency
from skelact.models.registry import Dims

DATA = Path(__file__).parent / "data" / "pyskl"
FIXTURE = json.loads((DATA / "pyskl_reference.json").read_text())
ARRAYS = np.load(DATA / "pyskl_reference.npz")
MODELS = tuple(FIXTURE["models"])
CASES = [(m, c) for m in MODELS for c in FIXTURE["models"][m]["cases"]]
BASE_CASE = "ntu25_c3"


def _case(model: str, case: str) -> dict:
    return FIXTURE["models"][model]["cases"][case]


def _shapes(model: str, case: str) -> dict[str, tuple[int, ...]]:
    """PYSKL's key -> shape for ``case`` (the JSON keeps NTU's in full, others as changes)."""
    entry = FIXTURE["models"][model]
    base = dict(zip(entry["keys"], map(tuple, entry["cases"][BASE_CASE]["shapes"]), strict=True))
    changed = entry["cases"][case].get("shapes_differing", {})
    return {k: tuple(changed.get(k, shape)) for k, shape in base.items()}


def _build(model: str, case: str) -> torch.nn.Module:
    c = _case(model, case)
    return build_model(model, layout=c["layout"], in_channels=c["in_channels"],
                       num_classes=FIXTURE["num_classes"], clip_len=c["clip_len"])  # fmt: skip


def _input(model: str, case: str) -> torch.Tensor:
    """The reference input, PYSKL's ``N x M x T x V x C``, as SkelAct's ``N x C x T x V x M``."""
    c = _case(model, case)
    v = get_layout(c["layout"]).num_joints
    shape = (FIXTURE["batch"], FIXTURE["num_persons"], c["clip_len"], v, c["in_channels"])
    x = np.random.RandomState(c["input_seed"]).normal(0.0, 1.0, shape).astype(np.float32)
    assert x.astype(np.float64).sum() == pytest.approx(c["input_sum"], abs=1e-6)
    return torch.from_numpy(x).permute(0, 4, 2, 3, 1)


def _pyskl_checkpoint(model: str, case: str, path: Path) -> Path:
    """A checkpoint as PYSKL writes one (``meta`` without skelact's keys, ``state_dict``)."""
    c = _case(model, case)
    state = pyskl_fill(list(_shapes(model, case).items()), c["weight_seed"])
    torch.save({"meta": {"epoch": 16}, "state_dict": state}, path)
    return path


def _rel(y: torch.Tensor, ref: np.ndarray) -> float:
    return float(np.linalg.norm(y.detach().numpy() - ref) / np.linalg.norm(ref))


@pytest.mark.parametrize("layout", ["ntu25", "coco17"])
def test_the_graph_is_pyskls_spatial_graph(layout: str) -> None:
    reference = ARRAYS[f"graph_{layout}"]
    np.testing.assert_array_equal(
        layout_graph(Dims(layout=get_layout(layout), num_joints=get_layout(layout).num_joints),
                     "stgcnpp").numpy(), reference.astype(np.float32))  # fmt: skip
    # SkelAct's ntu25 bones (ST-GCN's list) hang the hand tips on the thumbs, PYSKL's on the
    # hands: `graph='layout'` is the layout's own graph, which only COCO's shares with PYSKL.
    own = layout_adjacency(get_layout(layout))
    assert np.array_equal(own, reference) == (layout == "coco17")
    layout_wired = build_model("ctrgcn", layout=layout, graph="layout").state_dict()
    np.testing.assert_allclose(layout_wired["backbone.A"].numpy(), own, atol=1e-7)
    for model in MODELS:
        assert _case(model, f"{layout}_c3")["A_param_equals_graph"]
        built = build_model(model, layout=layout)
        graphs = [v for k, v in built.state_dict().items() if k.endswith(".A")]
        assert len(graphs) >= 10
        for graph in graphs:
            np.testing.assert_allclose(graph.numpy(), reference, rtol=0, atol=1e-7)


@pytest.mark.parametrize(("model", "case"), CASES)
def test_state_dict_layout_and_params_are_pyskls(model: str, case: str) -> None:
    built = _build(model, case)
    ours = {k: tuple(v.shape) for k, v in to_mmaction_state_dict(built).items()}
    assert ours == _shapes(model, case)
    entry = FIXTURE["models"][model]
    theirs = {k for k, p in zip(entry["keys"], entry["is_param"], strict=True) if p}
    names = dict(zip(built.state_dict(), to_mmaction_state_dict(built), strict=True))
    assert {names[n] for n, _ in built.named_parameters()} == theirs
    assert sum(p.numel() for p in built.parameters()) == _case(model, case)["params"]


@pytest.mark.parametrize(("model", "case"), CASES)
def test_a_pyskl_checkpoint_gives_pyskls_logits(model: str, case: str, tmp_path: Path) -> None:
    c = _case(model, case)
    path = _pyskl_checkpoint(model, case, tmp_path / "j.pth")
    built = build_from_checkpoint(path, name=model, layout=c["layout"],
                                  in_channels=c["in_channels"])  # fmt: skip
    assert built.skelact_spec["options"]["num_classes"] == FIXTURE["num_classes"]  # from the head
    with torch.no_grad():
        logits = built.eval()(_input(model, case))
    assert _rel(logits, ARRAYS[f"{model}_{case}_logits"]) < 1e-4


@pytest.mark.parametrize("model", MODELS)
def test_export_writes_pyskls_layout_and_round_trips(model: str, tmp_path: Path) -> None:
    built = load_checkpoint(_build(model, BASE_CASE),
                            _pyskl_checkpoint(model, BASE_CASE, tmp_path / "j.pth"))  # fmt: skip
    out = export_mmaction_checkpoint(built, tmp_path / "export.pth")
    state = torch.load(out, weights_only=True)["state_dict"]
    assert list(state) == FIXTURE["models"][model]["keys"]  # PYSKL's names, in PYSKL's order
    again = build_from_checkpoint(out)  # name and options from the export's meta
    x = _input(model, BASE_CASE)
    with torch.no_grad():
        assert torch.equal(again.eval()(x), built.eval()(x))


@pytest.mark.parametrize(("model", "case"), CASES)
def test_flops_equal_pyskls(model: str, case: str) -> None:
    c = _case(model, case)
    counted = complexity_of(_build(model, case), model, c["clip_len"])
    assert round(counted["gflops"] * 1e9) == c["macs"]
    assert counted["params"] == c["params"]


@pytest.mark.parametrize("model", MODELS)
def test_recipe_clip_complexity_equals_pyskls(model: str) -> None:
    c = _case(model, BASE_CASE)
    counted = model_complexity(model)  # NTU 3-D, the recipe's 100 frames, 60 classes
    assert counted["input_shape"] == [1, 3, 100, 25, 2]
    assert (counted["params"], round(counted["gflops"] * 1e9)) == (c["params"], c["macs_clip100"])


@pytest.mark.parametrize("model", MODELS)
def test_graph_needs_the_layouts_joint_count_and_a_known_wiring(model: str) -> None:
    with pytest.raises(ModelError, match="builds its graph from layout 'coco17'"):
        build_model(model, layout="coco17", num_joints=25)
    with pytest.raises(ModelError, match="graph='mmaction' is not one of pyskl, layout"):
        build_model(model, graph="mmaction")


@pytest.mark.parametrize("model", MODELS)
def test_onnx_export_parity_and_streaming(model: str, tmp_path: Path, reference_dir: Path) -> None:
    """The PYSKL-layout checkpoint exports with ONNX Runtime parity < 1e-4 and streams."""
    from skelact.deploy.export import export_onnx
    from skelact.deploy.runtime import OnnxModel
    from skelact.deploy.stream import skeleton_frames, stream

    ckpt = _pyskl_checkpoint(model, BASE_CASE, tmp_path / "j.pth")
    built = build_from_checkpoint(ckpt, name=model)
    own = export_mmaction_checkpoint(built, tmp_path / "named.pth")  # carries the model name
    result = export_onnx(own, tmp_path / "model.onnx")
    assert result.parity_rel_error < 1e-4
    raw = reference_dir / "ntu_prep" / "raw" / "S001C001P001R001A001.skeleton"
    windows = list(stream(skeleton_frames(raw), OnnxModel(tmp_path / "model.onnx"),
                          window=40, stride=40, top_k_classes=3))  # fmt: skip
    assert windows and all(len(w.top) == 3 for w in windows)
