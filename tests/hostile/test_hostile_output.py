"""Family 1: output safety. Nothing a user wrote is lost, replaced or left half-written, whatever happens."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from archdsl.errors import UsageError
from archdsl.output import write_file, write_output_dir
from tests.hostile._hostile import cli, one_paragraph

FILES = {"a.txt": "new a", "b.bin": b"new b"}


def build(capsys, out: str, *extra: str) -> tuple[int, str, str]:
    return cli(capsys, "build", "small.arch", "-o", out, *extra)


# -- foreign files are never deleted -------------------------------------------------------------

@pytest.mark.parametrize("plant", ["subdir", "symlink", "extra", "fifo", "hidden"])
def test_force_never_deletes_foreign_files(here: Path, capsys, plant: str) -> None:
    """A folder named like an output file, a symlink, an unknown file, a FIFO: --force refuses, all kept."""
    assert build(capsys, "OUT")[0] == 0
    out = here / "OUT"
    (here / "thesis.tex").write_text("years of work")
    if plant == "subdir":
        (out / "model.py").unlink()
        (out / "model.py").mkdir()
        (out / "model.py" / "thesis.tex").write_text("years of work")
    elif plant == "symlink":
        (out / "model.py").unlink()
        (out / "model.py").symlink_to(here / "thesis.tex")
    elif plant == "extra":
        (out / "notes.md").write_text("mine")
    elif plant == "fifo":
        os.mkfifo(out / "pipe")
    else:
        (out / ".git").mkdir()
    before = sorted(p.name for p in out.iterdir())
    code, _, err = build(capsys, "OUT", "--force")
    assert code == 2 and "refusing to replace" in err and "did not write" in err
    one_paragraph(err)
    assert sorted(p.name for p in out.iterdir()) == before
    assert (here / "thesis.tex").read_text() == "years of work"
    if plant == "subdir":
        assert (out / "model.py" / "thesis.tex").read_text() == "years of work"


@pytest.mark.parametrize("kind", ["file", "symlink-to-folder", "dangling-symlink"])
def test_force_never_replaces_a_non_folder(here: Path, capsys, kind: str) -> None:
    target = here / "OUT"
    (here / "real").mkdir()
    if kind == "file":
        target.write_text("mine")
    elif kind == "symlink-to-folder":
        target.symlink_to(here / "real")
    else:
        target.symlink_to(here / "nowhere")
    code, _, err = build(capsys, "OUT", "--force")
    assert code == 2 and "not a folder" in err
    assert os.path.lexists(target) and (kind == "file") == target.is_file()
    assert sorted(p.name for p in here.iterdir()) == ["OUT", "real", "small.arch"]


def test_force_checks_what_it_swapped_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A foreign file that appears after the pre-check is swapped back, not deleted."""
    out = tmp_path / "OUT"
    write_output_dir(out, FILES)
    import archdsl.output as output

    real = output._preflight

    def sneaky(target, force, allowed):
        real(target, force, allowed)
        (target / "late.txt").write_text("written meanwhile")

    monkeypatch.setattr(output, "_preflight", sneaky)
    with pytest.raises(UsageError, match="late.txt"):
        write_output_dir(out, {"a.txt": "newer"}, force=True, known=FILES)
    assert (out / "late.txt").read_text() == "written meanwhile" and (out / "a.txt").read_text() == "new a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["OUT"]


def test_force_replaces_an_earlier_output(tmp_path: Path) -> None:
    out = tmp_path / "OUT"
    write_output_dir(out, FILES)
    paths = write_output_dir(out, {"a.txt": "newer", "b.bin": b"x"}, force=True)
    assert paths["a.txt"].read_text() == "newer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["OUT"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~_umask()


def test_force_keeps_the_folder_mode(tmp_path: Path) -> None:
    out = tmp_path / "OUT"
    write_output_dir(out, FILES)
    out.chmod(0o750)
    write_output_dir(out, FILES, force=True)
    assert stat.S_IMODE(out.stat().st_mode) == 0o750


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_bad_output_names_are_programming_errors(tmp_path: Path) -> None:
    for name in ["", "..", "a/b", ".hidden"]:
        with pytest.raises(ValueError):
            write_output_dir(tmp_path / "o", {name: "x"})
    assert list(tmp_path.iterdir()) == []


# -- concurrency --------------------------------------------------------------------------------

def test_concurrent_writers_exactly_one_wins(tmp_path: Path) -> None:
    """Two writers of one new OUTDIR, both past the pre-check: one succeeds, the other is refused."""
    barrier = threading.Barrier(2)
    results: list[object] = []

    def writer(tag: str) -> None:
        def content(path: Path) -> None:
            barrier.wait(timeout=10)    # both have passed the "does OUT exist" check
            path.write_text(tag)
        try:
            write_output_dir(tmp_path / "OUT", {"tag.txt": content})
            results.append(tag)
        except UsageError as exc:
            results.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in "AB"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    winners = [r for r in results if isinstance(r, str)]
    losers = [r for r in results if isinstance(r, UsageError)]
    assert len(winners) == 1 and len(losers) == 1 and "already exists" in str(losers[0])
    assert (tmp_path / "OUT" / "tag.txt").read_text() == winners[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["OUT"]


def test_concurrent_cli_builds(here: Path) -> None:
    """Two real `archdsl build -o OUT` processes at once: exactly one exits 0."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [subprocess.Popen([sys.executable, "-m", "archdsl.cli", "build", "small.arch", "-o", "OUT",
                               "--seed", str(i)], cwd=here, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert sorted(code for code, _ in results) == [0, 2], results
    assert all("Traceback" not in err for _, err in results)
    assert sorted(p.name for p in here.iterdir()) == ["OUT", "small.arch"]


# -- kill -9 at several moments -----------------------------------------------------------------

KILLED_WRITER = """
import os, sys, time
from pathlib import Path
import archdsl.output as output

out, moment = sys.argv[1], sys.argv[2]
def stop():
    print("ready", flush=True)
    time.sleep(60)
def content(path):
    path.write_bytes(b"x" * 100000)
    if moment == "writing":
        stop()
if moment == "swapped":
    real = output._remove_ours
    output._remove_ours = lambda folder: stop() if Path(folder).name.startswith(".OUT") else real(folder)
if moment == "two-step":
    real_rename, calls = os.rename, []
    def rename(a, b):
        calls.append(a)
        if len(calls) == 2:
            stop()
        real_rename(a, b)
    os.rename = rename
output.write_output_dir(out, {"a.txt": "killed run", "w.bin": content}, force=True, known={"b.bin"})
"""


@pytest.mark.parametrize("moment", ["writing", "swapped", "two-step"])
def test_kill_9_leaves_the_old_or_new_output_and_no_litter(tmp_path: Path, moment: str) -> None:
    """kill -9 while writing, after the swap, between the fallback's two renames: the next run cleans up."""
    out = tmp_path / "OUT"
    write_output_dir(out, FILES)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    if moment == "two-step":
        env["ARCHDSL_NO_RENAMEAT2"] = "1"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(out), moment], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc.stdout.close()
    litter = [p.name for p in tmp_path.iterdir() if p.name != "OUT"]
    assert len(litter) == (2 if moment == "two-step" else 1), litter
    assert all(name.startswith(".OUT.archdsl-") for name in litter)
    if moment == "writing":
        assert (out / "a.txt").read_text() == "new a"       # the old output, untouched
    elif moment == "swapped":
        assert (out / "a.txt").read_text() == "killed run"  # the new output, complete
    else:
        assert not out.exists()                              # between the two renames: recovered next run
    write_output_dir(tmp_path / "OTHER", FILES)              # another folder's run leaves this one's litter
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(".OUT.")]) == len(litter)
    with pytest.raises(UsageError, match="already exists"):
        write_output_dir(out, FILES)                         # the next run for OUT recovers and cleans...
    assert sorted(p.name for p in tmp_path.iterdir()) == ["OTHER", "OUT"]
    assert (out / "a.txt").read_text() in ("new a", "killed run")


def test_live_writer_temp_is_not_removed(tmp_path: Path) -> None:
    """A temporary folder whose writer is still running is left alone by another run's clean-up."""
    out = tmp_path / "OUT"
    started, release = threading.Event(), threading.Event()
    errors: list[Exception] = []

    def slow(path: Path) -> None:
        path.write_text("slow")
        started.set()
        release.wait(30)

    def first() -> None:
        try:
            write_output_dir(out, {"s.txt": slow})
        except UsageError as exc:
            errors.append(exc)

    t = threading.Thread(target=first)
    t.start()
    assert started.wait(30)
    write_output_dir(out, {"s.txt": "fast"}, force=True)      # cleans stale temps, but not the live one
    live = [p for p in tmp_path.iterdir() if p.name.startswith(".OUT.")]
    assert len(live) == 1 and (live[0] / "s.txt").read_text() == "slow"
    release.set()
    t.join(30)
    assert len(errors) == 1 and "already exists" in str(errors[0])   # the slower writer loses, no overwrite
    assert (out / "s.txt").read_text() == "fast"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["OUT"]


# -- single output files: special files, symlinks, modes -----------------------------------------

def test_fmt_into_a_fifo_writes_into_it(here: Path, capsys) -> None:
    fifo = here / "pipe.arch"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    code, _, err = cli(capsys, "fmt", "small.arch", "-o", str(fifo))
    reader.join(30)
    assert code == 0, err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and got and b"model Small" in got[0]


def test_fmt_into_dev_null_and_dev_full(here: Path, capsys) -> None:
    """Device nodes are written into, never replaced (this test may run as root)."""
    assert cli(capsys, "fmt", "small.arch", "-o", "/dev/null")[0] == 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    if os.path.exists("/dev/full"):
        code, _, err = cli(capsys, "fmt", "small.arch", "-o", "/dev/full")
        assert code == 2 and "No space left" in err
        one_paragraph(err)
        assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_fmt_through_a_symlink_keeps_the_link(here: Path, capsys) -> None:
    (here / "real.arch").write_text("old")
    (here / "link.arch").symlink_to("real.arch")
    assert cli(capsys, "fmt", "small.arch", "-o", "link.arch")[0] == 0
    assert (here / "link.arch").is_symlink() and (here / "real.arch").read_text().startswith("model Small")


@pytest.mark.parametrize("mode", [0o644, 0o755, 0o600, 0o664])
def test_in_place_keeps_the_mode(here: Path, capsys, mode: int) -> None:
    spec = here / "messy.arch"
    spec.write_text(SPEC_MESSY)
    spec.chmod(mode)
    assert cli(capsys, "fmt", "messy.arch", "--in-place")[0] == 0
    assert stat.S_IMODE(spec.stat().st_mode) == mode and spec.read_text() != SPEC_MESSY
    assert sorted(p.name for p in here.iterdir()) == ["messy.arch", "small.arch"]


SPEC_MESSY = "model M(){\n in x:[N,3]\n   out   relu( x )\n}\n"


def test_viz_through_a_symlink_and_into_a_fifo(here: Path, capsys) -> None:
    (here / "real.dot").write_text("old")
    (here / "g.dot").symlink_to("real.dot")
    assert cli(capsys, "viz", "small.arch", "-o", "g.dot")[0] == 0
    assert (here / "g.dot").is_symlink() and (here / "real.dot").read_text().startswith("digraph")


@pytest.mark.parametrize("target, fragment", [
    ("DIR", "is a folder"),
    ("file.txt/x.arch", "Not a directory"),
    ("missing/x.arch", "No such file"),
    ("x" * 300 + ".arch", "File name too long"),
    ("/proc/version", "cannot write"),
    ("/sys/kernel/notes", "cannot write"),
])
def test_fmt_output_errors_are_messages(here: Path, capsys, target: str, fragment: str) -> None:
    (here / "DIR").mkdir()
    (here / "file.txt").write_text("mine")
    code, _, err = cli(capsys, "fmt", "small.arch", "-o", target)
    assert code == 2 and fragment in err, err
    one_paragraph(err)
    assert (here / "file.txt").read_text() == "mine"
    assert sorted(p.name for p in here.iterdir()) == ["DIR", "file.txt", "small.arch"]


@pytest.mark.parametrize("target, fragment", [
    ("file.txt/OUT", "a component of the path is a file"),
    ("x" * 300, "File name too long"),
    ("/proc/archdsl-out", "cannot"),
    ("/sys/archdsl-out", "cannot"),
])
def test_build_output_errors_are_messages(here: Path, capsys, target: str, fragment: str) -> None:
    (here / "file.txt").write_text("mine")
    code, _, err = build(capsys, target)
    assert code == 2 and fragment in err, err
    one_paragraph(err)
    assert sorted(p.name for p in here.iterdir()) == ["file.txt", "small.arch"]


def test_write_file_refuses_a_folder_and_keeps_it(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a folder"):
        write_file(tmp_path, "x")
    assert list(tmp_path.iterdir()) == []


def test_new_files_get_the_umask_mode(tmp_path: Path) -> None:
    write_file(tmp_path / "n.txt", "x")
    assert stat.S_IMODE((tmp_path / "n.txt").stat().st_mode) == 0o666 & ~_umask()
    time.sleep(0)


# -- groups of sibling files and exclusive single files --------------------------------------------------------

def test_write_files_all_or_nothing(tmp_path: Path) -> None:
    from archdsl.output import write_files

    (tmp_path / "m.onnx.data").write_text("the user's own data")
    with pytest.raises(UsageError, match="already exists"):
        write_files(tmp_path, {"m.onnx": b"model", "m.onnx.data": b"weights"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx.data"]
    assert (tmp_path / "m.onnx.data").read_text() == "the user's own data"
    (tmp_path / "m.onnx.data").chmod(0o640)
    paths = write_files(tmp_path, {"m.onnx": b"model", "m.onnx.data": b"weights"}, force=True)
    assert paths["m.onnx"].read_bytes() == b"model" and stat.S_IMODE(paths["m.onnx.data"].stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]


@pytest.mark.parametrize("kind", ["symlink", "fifo", "folder"])
def test_write_files_never_replaces_special_files(tmp_path: Path, kind: str) -> None:
    from archdsl.output import write_files

    target = tmp_path / "m.onnx"
    if kind == "symlink":
        (tmp_path / "real").write_text("mine")
        target.symlink_to(tmp_path / "real")
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    with pytest.raises(UsageError, match="not a regular file"):
        write_files(tmp_path, {"m.onnx": b"model"}, force=True)
    assert os.path.lexists(target) and not (target.is_file() and not target.is_symlink())


def _exclusive_writers_race(folder: Path, writers: int) -> list[object]:
    """Start ``writers`` threads at once, each writing ``folder/x.onnx`` exclusively; what each one got."""
    results: list[object] = []
    barrier = threading.Barrier(writers)

    def writer(i: int) -> None:
        barrier.wait(10)
        try:
            write_file(folder / "x.onnx", bytes([i]) * 10_000, exclusive=True)
            results.append(i)
        except UsageError as exc:
            results.append(exc)
        except Exception as exc:    # noqa: BLE001 - recorded so the assertion names it
            results.append(repr(exc))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_exclusive_write_file_races(tmp_path: Path) -> None:
    """Of many concurrent exclusive writers of one file exactly one wins, and its bytes are complete.

    Many short rounds: a writer's temporary folder once lived unlocked for a moment after its creation, and
    another writer's stale-folder cleanup removed it (about one round in four failed at six writers).
    """
    for round_ in range(25):
        folder = tmp_path / str(round_)
        results = _exclusive_writers_race(folder, 6)
        assert not [r for r in results if isinstance(r, str)], results
        winners = [r for r in results if isinstance(r, int)]
        assert len(winners) == 1 and (folder / "x.onnx").read_bytes() == bytes(winners) * 10_000
        assert sorted(p.name for p in folder.iterdir()) == ["x.onnx"]


BIG = "model Big() {\n  in x: [N, 1024]\n  fc = Linear(4096)\n  out x |> fc\n}\n"     # 16 MB of weights


@pytest.mark.parametrize("moment", ["temp-folder", "swapped"])
def test_kill_9_of_a_real_build(here: Path, capsys, moment: str) -> None:
    """`archdsl build --force` killed mid-write or mid-swap: OUT stays a complete build, the next run cleans up."""
    from archdsl.saving import load_built

    (here / "big.arch").write_text(BIG)
    assert cli(capsys, "build", "big.arch", "-o", "OUT")[0] == 0
    inode = os.stat(here / "OUT").st_ino
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "archdsl.cli", "build", "big.arch", "-o", "OUT", "--force",
                             "--seed", "1"], cwd=here, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            temps = [p for p in here.iterdir() if p.name.startswith(".OUT.archdsl-")]
            if moment == "temp-folder" and temps:
                break
            if moment == "swapped" and os.stat(here / "OUT").st_ino != inode:    # the new folder is in place
                break
            time.sleep(0.002)
    finally:
        proc.kill()
        proc.wait(30)
    litter = [p for p in here.iterdir() if p.name.startswith(".OUT.")]
    assert litter or proc.returncode != -9 or moment == "swapped"     # killed mid-write: its temp folder stays
    assert isinstance(load_built(here / "OUT"), torch.nn.Module)          # complete, old or new
    assert cli(capsys, "build", "big.arch", "-o", "OUT", "--force")[0] == 0
    assert sorted(p.name for p in here.iterdir()) == ["OUT", "big.arch", "small.arch"]
