"""Family 5: file-system and command-line mistakes are one-paragraph messages with exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.hostile._hostile import SPEC, cli, one_paragraph

COMMANDS = [["check"], ["ir"], ["stats"], ["viz"], ["build", "-o", "OUT"], ["fmt"], ["simplify", "-o", "OUT"],
            ["export", "-o", "OUT"], ["symmetries"], ["test"], ["linearize", "--random", "0", "-o", "OUT"]]
NOT_SPECS = [
    ("spec.txt", "no such spec file or zoo model: spec.txt"),
    ("-", "no such spec file or zoo model: -"),
    ("", "no such spec file or zoo model: ''"),
    ("resnet5", "did you mean 'resnet50'?"),
    ("resnet5.arch", "no such spec file: resnet5.arch"),
    ("model M() { }", "no such spec file or zoo model"),
    ("x" * 5000, "no such spec file or zoo model: xxx"),
    ("a\0b", "no such spec file or zoo model"),
    ("DIR", "DIR is a folder, not a spec file"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("file, message", NOT_SPECS, ids=[f"file{i}" for i in range(len(NOT_SPECS))])
def test_file_arguments_that_are_not_specs(here: Path, capsys, command: list[str], file: str, message: str) -> None:
    """Every command reads FILE as a path or zoo name, never as spec text; the same message everywhere."""
    (here / "DIR").mkdir()
    code, out, err = cli(capsys, command[0], file, *command[1:])
    if command == ["fmt"] and file == "DIR":   # fmt may format the specs in a folder; this one holds none
        assert code == 2 and ("holds no .arch" in err or message in err), err
    else:
        assert code == 2 and message in err, err
    one_paragraph(err)
    assert not (here / "OUT").exists()


def test_every_command_that_takes_a_file_is_covered() -> None:
    """A new command that reads FILE must join COMMANDS above (the hostile suite grows with the CLI)."""
    from archdsl.cli import COMMANDS as ALL

    covered = {c[0] for c in COMMANDS} | {"align", "symmetry", "ops", "cache"}   # align: --spec FILE; ops, cache: no FILE
    assert set(ALL) <= covered, sorted(set(ALL) - covered)


def test_align_spec_argument(here: Path, capsys) -> None:
    for spec, message in (("resnet5", "did you mean 'resnet50'?"), ("-", "no such spec file or zoo model")):
        code, _, err = cli(capsys, "align", "a.safetensors", "b.safetensors", "--spec", spec, "-o", "OUT.st")
        assert code == 2 and message in err, err
        one_paragraph(err)
    assert not (here / "OUT.st").exists()


@pytest.mark.parametrize("name", ["", "x" * 5000, "Conv2d(", "\0", "../../etc/passwd", "resnet50"])
def test_ops_with_odd_names(capsys, name: str) -> None:
    code, out, err = cli(capsys, "ops", name)
    assert code in (0, 2)
    if code:
        one_paragraph(err)


def test_check_of_several_files_reports_each(here: Path, capsys) -> None:
    code, out, err = cli(capsys, "check", "small.arch", "resnet5", "-")
    assert code == 2 and "small.arch: Small: ok" in out and "resnet50" in err


@pytest.mark.parametrize("seed", ["18446744073709551616", "-9223372036854775809", str(10**100)])
def test_huge_seed(here: Path, capsys, seed: str) -> None:
    code, _, err = cli(capsys, "build", "small.arch", "-o", "OUT", "--seed", seed)
    assert code == 2 and "--seed must fit in 64 bits" in err
    assert not (here / "OUT").exists()


def test_long_file_and_output_names(here: Path, capsys) -> None:
    long = "y" * 300
    for argv in (["check", long + ".arch"], ["fmt", "small.arch", "-o", long + ".arch"],
                 ["build", "small.arch", "-o", long], ["viz", "small.arch", "-o", long + ".dot"],
                 ["build", "small.arch", "-o", "/".join(["z" * 200] * 30)]):
        code, _, err = cli(capsys, *argv)
        assert code == 2, (argv, err)
        one_paragraph(err)
    assert sorted(p.name for p in here.iterdir()) == ["small.arch"]


def test_viz_output_errors(here: Path, capsys) -> None:
    (here / "file.txt").write_text("mine")
    for target, fragment in (("file.txt/g.dot", "does not exist"), ("g.txt", "use a .dot"), ("missing/g.dot", "does not exist")):
        code, _, err = cli(capsys, "viz", "small.arch", "-o", target)
        assert code == 2 and fragment in err, err
    assert (here / "file.txt").read_text() == "mine"


def test_stdout_on_a_full_device(here: Path) -> None:
    """`archdsl ir small.arch > /dev/full`: a message on stderr and exit 2, no traceback, no 'Exception ignored'."""
    env_path = str(Path(__file__).resolve().parents[2])
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "archdsl.cli", "ir", "small.arch"], cwd=here, stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120, env={"PYTHONPATH": env_path}, check=False)
    assert proc.returncode == 2 and "No space left on device" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    one_paragraph(proc.stderr)


def test_stdout_closed_early(here: Path) -> None:
    """`archdsl ir resnet50 | head -1`: a closed pipe ends quietly."""
    env_path = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen([sys.executable, "-m", "archdsl.cli", "ir", "resnet50"], cwd=here, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={"PYTHONPATH": env_path})
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(120) == 0 and "Traceback" not in err and "Exception ignored" not in err, err


def test_unreadable_and_binary_specs(here: Path, capsys) -> None:
    (here / "bin.arch").write_bytes(b"\xff\xfe\x00model")
    for command in (["check"], ["fmt"], ["build", "-o", "OUT"]):
        code, _, err = cli(capsys, command[0], "bin.arch", *command[1:])
        assert code in (1, 2) and "bin.arch" in err, err
        one_paragraph(err)


def test_fmt_in_place_on_a_zoo_name_is_refused(here: Path, capsys) -> None:
    code, _, err = cli(capsys, "fmt", "resnet50", "--in-place")
    assert code == 2 and "zoo model" in err


def test_spec_on_the_command_line_is_still_a_file(here: Path, capsys) -> None:
    """A file whose name looks like spec text is read as a file."""
    weird = here / "model M() {"
    weird.write_text(SPEC)
    code, out, _ = cli(capsys, "check", str(weird))
    assert code == 0 and "Small: ok" in out


@pytest.mark.parametrize("argv", [
    ["export", "small.arch", "-o", "m.onnx", "--seed", "99999999999999999999999"],
    ["simplify", "small.arch", "-o", "OUT", "--seed", "-99999999999999999999999"],
    ["align", "a.st", "b.st", "--spec", "small.arch", "-o", "o.st", "--seed", str(2**64)],
    ["stats", "small.arch", "--input", "N=" + "9" * 5000],
    ["stats", "small.arch", "--input", "N=9223372036854775808"],
    ["viz", "small.arch", "--input", "H=" + "1" * 25],
    ["check", "small.arch", "--param", "classes=" + "9" * 5000],
])
def test_numbers_beyond_64_bits_on_every_command(here: Path, capsys, argv: list[str]) -> None:
    code, _, err = cli(capsys, *argv)
    assert code == 2 and ("64 bits" in err or "classes" in err), err
    one_paragraph(err)
    assert sorted(p.name for p in here.iterdir()) == ["small.arch"]
