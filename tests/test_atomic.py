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


def test_files_get_the_mode_open_would_give_them(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "shared.txt", "x")
        os.umask(0o077)
        atomic_write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "private.txt").stat().st_mode & 0o777 == 0o600


def test_stale_temps_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    import os
    import subprocess
    import sys

    from skelact.atomic import remove_stale_temps

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    stale = tmp_path / f".last.pt.abc123.tmp-{dead}"
    live = tmp_path / f".best.pt.def456.tmp-{os.getpid()}"
    other = tmp_path / ".notes.tmp"
    for path in (stale, live, other):
        path.write_text("half")
    assert remove_stale_temps(tmp_path) == [stale]
    assert live.exists() and other.exists() and not stale.exists()


def test_output_lock_refuses_a_second_live_writer_and_takes_over_a_stale_lock(tmp_path):
    import json
    import subprocess
    import sys

    from skelact.errors import OutputBusyError
    from skelact.locking import LOCK_NAME, output_lock

    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from skelact.locking import output_lock\n"
         "with output_lock(sys.argv[1], 'train'):\n print('held', flush=True); time.sleep(30)",
         str(tmp_path)], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(OutputBusyError, match=rf"another train run \(pid {holder.pid}"),
            output_lock(tmp_path),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
    # The killed holder left its lock behind: stale, so the next run takes it over.
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == holder.pid
    with output_lock(tmp_path, "train") as lock:
        assert json.loads(lock.read_text())["pid"] != holder.pid
        with output_lock(tmp_path):  # re-entrant inside one process
            pass
        assert lock.exists()
    assert not (tmp_path / LOCK_NAME).exists()


def test_output_lock_on_a_file_is_one_clear_error(tmp_path):
    from skelact.errors import SkelactError
    from skelact.locking import output_lock

    (tmp_path / "f").write_text("")
    with pytest.raises(SkelactError, match="not a folder"), output_lock(tmp_path / "f"):
        pass
