"""NTU dataset facts: sample names, benchmark splits, packaged lists."""

from __future__ import annotations

import pytest

from skelact.data import ntu


def test_parse_sample_name_round_trip() -> None:
    s = ntu.parse_sample_name("S017C003P020R002A060")
    assert s == ntu.SampleName(17, 3, 20, 2, 60)
    assert s.name == "S017C003P020R002A060"
    assert s.label == 59
    assert (
        ntu.parse_sample_name("/x/y/S001C001P001R001A001.skeleton").name == "S001C001P001R001A001"
    )


@pytest.mark.parametrize(
    "bad",
    ["", "S001C001P001R001", "S001C001P001R001A1", "S001C001P001R001A001x", "S000C001P001R001A001",
     "s001c001p001r001a001", "missing_list.txt", "S001C001P001R001A001.skeleton.bak"],
)  # fmt: skip
def test_parse_sample_name_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="not an NTU RGB\\+D sample name"):
        ntu.parse_sample_name(bad)


def test_ntu60_splits() -> None:
    train_subject = ntu.parse_sample_name("S001C001P001R001A001")
    val_subject = ntu.parse_sample_name("S001C002P003R001A001")
    assert ntu.split_of(train_subject, "ntu60", "xsub") == "train"
    assert ntu.split_of(val_subject, "ntu60", "xsub") == "val"
    assert ntu.split_of(train_subject, "ntu60", "xview") == "val"  # camera 1 validates
    assert ntu.split_of(val_subject, "ntu60", "xview") == "train"
    assert len(ntu.TRAIN_SUBJECTS_60) == 20


def test_ntu120_splits_and_aliases() -> None:
    assert len(ntu.TRAIN_SUBJECTS_120) == 53
    assert len(ntu.TRAIN_SETUPS_120) == 16
    s = ntu.parse_sample_name("S018C001P045R001A061")  # subject 45 trains in NTU 120 only
    assert ntu.split_of(s, "ntu120", "xsub") == "train"
    assert ntu.split_of(s, "ntu120", "xset") == "train"  # even setup
    assert ntu.split_of(s, "ntu120", "xsetup") == "train"
    odd = ntu.parse_sample_name("S019C001P044R001A061")
    assert ntu.split_of(odd, "ntu120", "xsub") == "val"
    assert ntu.split_of(odd, "ntu120", "xset") == "val"
    assert ntu.canonical_benchmark("ntu120", "XSETUP") == "xset"
    with pytest.raises(ValueError, match="does not exist for ntu120"):
        ntu.canonical_benchmark("ntu120", "xview")
    with pytest.raises(ValueError, match="does not exist for ntu60"):
        ntu.canonical_benchmark("ntu60", "xset")
    with pytest.raises(ValueError, match="unknown dataset"):
        ntu.dataset_spec("ntu61")


def test_dataset_membership() -> None:
    spec60 = ntu.dataset_spec("ntu60")
    assert spec60.contains(ntu.parse_sample_name("S017C001P001R001A060"))
    assert not spec60.contains(ntu.parse_sample_name("S018C001P001R001A001"))
    assert not spec60.contains(ntu.parse_sample_name("S001C001P001R001A061"))
    assert ntu.dataset_spec("ntu120").contains(ntu.parse_sample_name("S032C001P106R001A120"))


def test_packaged_lists_match_reference(reference_dir) -> None:
    for dataset, file in (
        ("ntu60", "NTU_RGBD_samples_with_missing_skeletons.txt"),
        ("ntu120", "NTU_RGBD120_samples_with_missing_skeletons.txt"),
    ):
        ref = {ln.strip() for ln in (reference_dir / "ntu" / file).read_text().splitlines()}
        assert ntu.missing_samples(dataset) == ref - {""}
    assert len(ntu.missing_samples("ntu60")) == 302
    assert len(ntu.missing_samples("ntu120")) == 535
    names = ntu.action_names()
    ref_names = (reference_dir / "ntu" / "action_names.txt").read_text().splitlines()
    assert names == [n.strip() for n in ref_names if n.strip()]
    assert len(names) == 120 and names[0] == "drink water"
    assert ntu.action_names(60) == names[:60]
    with pytest.raises(ValueError):
        ntu.action_names(121)


def test_read_sample_list(tmp_path) -> None:
    good = tmp_path / "list.txt"
    good.write_text("S001C001P001R001A001\n\n# comment\nS001C001P001R001A002  # why\n")
    assert ntu.read_sample_list(good) == {"S001C001P001R001A001", "S001C001P001R001A002"}
    bad = tmp_path / "bad.txt"
    bad.write_text("S001C001P001R001A001\nnot-a-sample\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: .*not-a-sample"):
        ntu.read_sample_list(bad)
    with pytest.raises(ValueError, match="cannot read sample list"):
        ntu.read_sample_list(tmp_path / "absent.txt")
