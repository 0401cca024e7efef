"""Tests of `skelact synth`: exact NTU format, split coverage, determinism, learnability."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from skelact.cli import app
from skelact.data import ntu
from skelact.data.skeleton_file import read_skeleton
from skelact.data.synth import SynthError, SynthSettings, synthesize
from skelact.data.synth.motions import MOTION_LIBRARY, ROOT, class_program
from skelact.data.synth.plan import plan_samples, two_person_actions
from skelact.errors import SkelactError
from skelact.layouts import NTU25

NUM_JOINTS = NTU25.num_joints
SPINE_BASE = NTU25.index("spine_base")
joint_index = NTU25.index

NAME_RE = re.compile(rb"S\d{3}C\d{3}P\d{3}R\d{3}A\d{3}")
INT_RE = re.compile(rb"-?\d+")
FLOAT_RE = re.compile(rb"-?\d+(\.\d+)?(E[-+]\d\d)?")


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """10 classes x 12 samples, short sequences: enough for every test below, ~2 s to write."""
    out = tmp_path_factory.mktemp("synth")
    result = synthesize(
        SynthSettings(
            out, num_classes=10, samples_per_class=12, seed=3, frames_min=40, frames_max=70
        )
    )
    return out, result


def strict_read(data: bytes) -> list[list[tuple[int, np.ndarray]]]:
    """A deliberately strict reader: every line CRLF-terminated, exact field counts and types.

    Returns, per frame, a list of (body id, V x 12 joint array).
    """
    assert data.endswith(b"\r\n")
    lines = data[:-2].split(b"\r\n")
    assert all(b"\n" not in ln and b"\r" not in ln for ln in lines), "bare LF or CR found"
    it = iter(lines)
    num_frames = int(next(it))
    frames = []
    for _ in range(num_frames):
        count_line = next(it)
        assert INT_RE.fullmatch(count_line), count_line
        bodies = []
        for _ in range(int(count_line)):
            body = next(it).split(b" ")
            assert len(body) == 10, body
            assert re.fullmatch(rb"7205759\d{10}", body[0]), body[0]  # 17 digits like Kinect IDs
            for tok in (*body[1:7], body[9]):
                assert INT_RE.fullmatch(tok), body
            for tok in body[7:9]:
                assert FLOAT_RE.fullmatch(tok), body
            assert next(it) == str(NUM_JOINTS).encode()
            rows = [next(it).split(b" ") for _ in range(NUM_JOINTS)]
            for row in rows:
                assert len(row) == 12, row
                assert all(FLOAT_RE.fullmatch(tok) for tok in row[:11]), row
                assert row[11] in (b"0", b"1", b"2"), row
            bodies.append((int(body[0]), np.array(rows, dtype=float)))
        frames.append(bodies)
    assert next(it, None) is None, "data after the last frame"
    return frames


def test_files_have_the_exact_ntu_format(small_set):
    out, result = small_set
    files = sorted(out.glob("*.skeleton"))
    assert len(files) == result.files_written == 120
    seen = {"empty_frames": 0, "extra_bodies": 0, "two_bodies": 0, "sci": 0, "id_change": 0}
    for path in files:
        assert NAME_RE.fullmatch(path.stem.encode())
        data = path.read_bytes()
        frames = strict_read(data)
        assert 40 <= len(frames) <= 70
        seen["sci"] += data.count(b"E-")
        seen["empty_frames"] += any(not f for f in frames)
        counts = [len(f) for f in frames]
        seen["extra_bodies"] += max(counts) > (2 if int(path.stem[-3:]) >= 9 else 1)
        seen["two_bodies"] += int(path.stem[-3:]) in (9, 10) and max(counts) >= 2
        ids = {bid for f in frames if f for bid, _ in f[:1]}
        seen["id_change"] += len(ids) > 1
        # Depth and colour coordinates are the projection of x, y, z (Kinect v2 intrinsics).
        joints = np.concatenate([j for f in frames for _, j in f])
        x, y, z = joints[:, 0], joints[:, 1], joints[:, 2]
        assert np.all((z > 1.5) & (z < 5.5))
        np.testing.assert_allclose(joints[:, 3], 256 + 365.5 * x / z, atol=0.01)
        np.testing.assert_allclose(joints[:, 6], 540 - 1063 * y / z, atol=0.01)
        q = joints[:, 7:11]
        norms = np.linalg.norm(q, axis=1)
        assert np.all((np.abs(norms - 1) < 1e-5) | (norms == 0))  # unit quaternions or leaf zeros
        # The project's own reader agrees with the strict one.
        xyz = read_skeleton(path)
        first = next(i for i, f in enumerate(frames) if f)
        np.testing.assert_array_equal(xyz[0, first], frames[first][0][1][:, :3])
    # The awkward cases of real recordings all occur somewhere.
    assert seen["empty_frames"] > 5
    assert seen["extra_bodies"] > 5
    assert seen["two_bodies"] == 24  # every sample of the two two-person classes
    assert seen["sci"] > 0
    assert seen["id_change"] > 0


def test_every_split_has_train_and_val_samples_of_every_class(small_set):
    out, result = small_set
    names = [ntu.parse_sample_name(p.name) for p in out.glob("*.skeleton")]
    missing = ntu.missing_samples("ntu60") | ntu.missing_samples("ntu120")
    assert not {n.name for n in names} & missing
    for dataset, bench in (
        ("ntu60", "xsub"),
        ("ntu60", "xview"),
        ("ntu120", "xsub"),
        ("ntu120", "xset"),
    ):
        spec = ntu.dataset_spec(dataset)
        for part in ("train", "val"):
            actions = {
                n.action
                for n in names
                if spec.contains(n) and ntu.split_of(n, dataset, bench) == part
            }
            assert actions == set(range(1, 11)), (dataset, bench, part)
        counts = result.split_counts[f"{dataset}_{bench}"]
        assert counts["train"] + counts["val"] == 120
    manifest = json.loads((out / "synth.json").read_text())
    assert manifest["split_counts"] == result.split_counts


def test_coverage_with_minimum_samples_and_ntu120_classes():
    specs = plan_samples(120, 2, seed=0)
    assert len({s.name for s in specs}) == 240
    for action in range(1, 121):
        mine = [ntu.parse_sample_name(s.name) for s in specs if s.action == action]
        for dataset, bench in (("ntu120", "xsub"), ("ntu120", "xset")):
            assert {ntu.split_of(n, dataset, bench) for n in mine} == {"train", "val"}
        if action <= 60:
            assert all(ntu.dataset_spec("ntu60").contains(n) for n in mine)
            assert {ntu.split_of(n, "ntu60", "xview") for n in mine} == {"train", "val"}
    assert two_person_actions(120) == (*range(50, 61), *range(106, 121))
    assert two_person_actions(10) == (9, 10)
    # All 120 classes have different motion programs.
    programs = {
        (class_program(a, 120).person_a, class_program(a, 120).person_b) for a in range(1, 121)
    }
    assert len(programs) == 120
    assert len(MOTION_LIBRARY) >= 30


#: sha256 over (name, bytes) of every file of `small_set`, as written before synth became a
#: package: any change to the generator's numbers or to the text format shows up here.
SMALL_SET_DIGEST = "22edb52a4f34bd60d9784c625a1c07fe362b67195d31248ff59548a477b21fef"


def test_output_bytes_are_pinned(small_set):
    out, _ = small_set
    digest = hashlib.sha256()
    for path in sorted(out.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    assert digest.hexdigest() == SMALL_SET_DIGEST


def test_motions_name_joints_of_the_layout():
    for name, channels in MOTION_LIBRARY:
        for joint, *_ in channels:
            assert joint == ROOT or joint_index(joint) >= 0, (name, joint)


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    kw = {"num_classes": 3, "samples_per_class": 3, "frames_min": 20, "frames_max": 30}
    a = synthesize(SynthSettings(tmp_path / "a", seed=7, **kw))
    b = synthesize(SynthSettings(tmp_path / "b", seed=7, workers=2, **kw))
    c = synthesize(SynthSettings(tmp_path / "c", seed=8, **kw))
    files_a = sorted(p.name for p in a.out_dir.iterdir())
    assert files_a == sorted(p.name for p in b.out_dir.iterdir())
    for name in files_a:
        assert (a.out_dir / name).read_bytes() == (b.out_dir / name).read_bytes(), name
    assert {p.name for p in c.out_dir.glob("*.skeleton")} != set(files_a) - {"synth.json"}
    assert not list(a.out_dir.glob("*.tmp")) and not list(a.out_dir.glob(".*"))


def test_refuses_to_mix_with_other_files_unless_clean(tmp_path):
    kw = {"samples_per_class": 2, "frames_min": 10, "frames_max": 12}
    synthesize(SynthSettings(tmp_path, num_classes=3, **kw))
    with pytest.raises(SynthError, match="other .skeleton files"):
        synthesize(SynthSettings(tmp_path, num_classes=2, seed=1, **kw))
    result = synthesize(SynthSettings(tmp_path, num_classes=2, seed=1, clean=True, **kw))
    assert len(list(tmp_path.glob("*.skeleton"))) == result.files_written == 4
    for bad in ({"num_classes": 1}, {"num_classes": 121}, {"samples_per_class": 1}):
        with pytest.raises(SynthError):
            synthesize(SynthSettings(tmp_path / "x", **{**kw, **bad}))
    (tmp_path / "file").write_text("x")
    with pytest.raises(SynthError, match="file exists and is not a directory"):
        synthesize(SynthSettings(tmp_path / "file", num_classes=2, **kw))
    assert issubclass(SynthError, SkelactError)  # the CLI prints it as one error line
    with pytest.raises(SynthError, match="frames_min"):
        synthesize(
            SynthSettings(
                tmp_path / "x", num_classes=2, samples_per_class=2, frames_min=9, frames_max=5
            )
        )


def _features(path: Path) -> np.ndarray:
    """View-invariant motion descriptor of the two most energetic bodies (no preprocessing).

    Per body: log path length of each joint, mean height and spread of each joint relative to the
    spine base, and the joint distances to the spine base at 8 time points, all divided by the
    body's height.  The two bodies are summed so their order does not matter.
    """
    xyz = read_skeleton(path)  # (4, T, V, 3)
    energy = []
    for body in xyz:
        s = body[body.any(axis=(1, 2))]
        energy.append(s.reshape(-1, 3).std(0).sum() if len(s) else 0.0)
    feats = []
    for body in xyz[np.argsort(energy)[::-1][:2]]:
        present = body.any(axis=(1, 2))
        if present.sum() < len(present) / 2:
            feats.append(np.zeros(11 * NUM_JOINTS))
            continue
        s = body[present]
        c = np.cumsum(np.concatenate([np.zeros((1, NUM_JOINTS, 3)), s]), axis=0)
        s = (c[5:] - c[:-5]) / 5  # 5-frame moving average: motion, not sensor noise
        height = np.linalg.norm(s[:, joint_index("head")] - s[:, SPINE_BASE], axis=-1).mean()
        path_len = np.linalg.norm(np.diff(s, axis=0), axis=-1).sum(0) / height
        rel = (s - s[:, SPINE_BASE : SPINE_BASE + 1]) / height
        spread = np.linalg.norm(rel - rel.mean(0), axis=-1).mean(0)
        idx = np.linspace(0, len(rel) - 1, 8).round().astype(int)
        profile = np.linalg.norm(rel[idx], axis=-1).ravel()
        feats.append(np.concatenate([np.log1p(path_len), rel[..., 1].mean(0), 3 * spread, profile]))
    return np.concatenate([feats[0] + feats[1], [2.0 * feats[1].any()]])


def _nearest_centroid_accuracy(x, y, train):
    classes = np.unique(y[train])
    centroids = np.stack([x[train & (y == c)].mean(0) for c in classes])
    dist = ((x[~train][:, None] - centroids[None]) ** 2).sum(-1)
    return float((classes[dist.argmin(1)] == y[~train]).mean())


def test_classes_are_learnable_across_subjects(small_set):
    """A nearest-centroid classifier on simple motion features must beat chance (10 %) by far.

    Trained on the xsub train subjects, tested on the others; with labels shuffled the same
    classifier must stay near chance, which shows the accuracy comes from class-specific motion.
    """
    out, _ = small_set
    paths = sorted(out.glob("*.skeleton"))
    names = [ntu.parse_sample_name(p.name) for p in paths]
    x = np.stack([_features(p) for p in paths])
    y = np.array([n.label for n in names])
    train = np.array([ntu.is_training(n, "ntu60", "xsub") for n in names])
    acc = _nearest_centroid_accuracy(x, y, train)
    assert acc > 0.8, acc
    shuffled = np.random.default_rng(0).permutation(y)
    assert _nearest_centroid_accuracy(x, shuffled, train) < 0.4


def test_cli_writes_files_and_reports_errors(tmp_path):
    runner = CliRunner()
    out = tmp_path / "raw"
    args = ["synth", "--out-dir", str(out), "--num-classes", "2", "--samples-per-class", "2"]
    res = runner.invoke(app, [*args, "--frames-min", "10", "--frames-max", "12", "--quiet"])
    assert res.exit_code == 0, res.output
    assert len(list(out.glob("*.skeleton"))) == 4
    res = runner.invoke(app, ["synth", "--out-dir", str(out), "--num-classes", "500", "--quiet"])
    assert res.exit_code == 1
    assert "num_classes" in res.output
