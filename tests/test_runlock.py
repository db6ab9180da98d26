"""The run-folder write lock (toposcope.runlock)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from toposcope.runlock import LOCK_FILE, RunLockedError, run_lock


def test_second_writer_in_another_process_is_refused(tmp_path):
    with run_lock(tmp_path, "train"):
        code = textwrap.dedent(f"""
            from toposcope.runlock import run_lock, RunLockedError
            try:
                with run_lock({str(tmp_path)!r}, "profile"):
                    print("GOT")
            except RunLockedError as e:
                print("LOCKED", e)
        """)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert out.startswith("LOCKED")
        assert "toposcope train" in out and str(tmp_path) in out
    # released: the other process gets it now
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("GOT")


def test_killed_holder_leaves_no_stale_lock(tmp_path):
    code = f"from toposcope.runlock import run_lock\nimport os\nwith run_lock({str(tmp_path)!r}, 'train'):\n    os._exit(9)\n"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    assert (tmp_path / LOCK_FILE).exists()
    with run_lock(tmp_path, "train"):  # the kernel released the flock with the process
        pass


def test_reentrant_in_one_process_and_stale_temp_removed(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    stale = tmp_path / "checkpoints" / ".last.pt.abc123.tmp"
    stale.write_bytes(b"half")
    keep = tmp_path / "checkpoints" / "last.pt"
    keep.write_bytes(b"whole")
    with run_lock(tmp_path, "train"):
        assert not stale.exists() and keep.exists()
        with run_lock(tmp_path, "evaluate"):  # nested call from the same process
            pass
        # still held after the inner block: another process is refused
        code = f"from toposcope.runlock import run_lock\nwith run_lock({str(tmp_path)!r}):\n    pass\n"
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert r.returncode != 0 and "RunLockedError" in r.stderr


def test_error_type_is_a_value_error():
    assert issubclass(RunLockedError, ValueError)
    with pytest.raises(RunLockedError):
        raise RunLockedError("x")


@pytest.mark.parametrize("call", ["optimize", "filters"])
def test_optimize_and_filters_refuse_a_locked_run(run_copy, call):
    """Every library call that writes into a run folder takes its lock (here: held by another process)."""
    from toposcope.analysis.filters import write_filters
    from toposcope.optimize.run import optimize_run

    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from toposcope.runlock import run_lock
        with run_lock({str(run_copy)!r}, "train"):
            print("held", flush=True)
            sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match="toposcope train"):
            optimize_run(run_copy) if call == "optimize" else write_filters(run_copy)
    finally:
        holder.communicate("", timeout=30)
    assert not (run_copy / ("optimal" if call == "optimize" else "filters")).exists()
