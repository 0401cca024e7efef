"""Write-then-rename: a failed write leaves the old file and no temporary file behind."""

from __future__ import annotations

import pytest

from skelact.atomic import atomic_write, atomic_write_bytes, atomic_write_text


def test_writes_and_replaces(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic_write_text(target, "first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_a_crash_mid_write_keeps_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.pkl"
    atomic_write_text(target, "complete")

    def crash(tmp: str) -> None:
        with open(tmp, "w") as fh:
            fh.write("half")
        raise KeyboardInterrupt  # a kill arrives in the middle of the write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, crash)
    assert target.read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["out.pkl"]
