"""``archdsl check``: exit codes (0 ok, 1 spec errors, 2 usage errors), warnings, text and JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archdsl.cli import main

GOOD = """\
model Good(n: int = 4, sizes: list[int] = [1, 2]) {
  in x: [N, 8]
  fc = Linear(n)
  out x |> fc
}
"""

BAD = """\
model Bad() {
  in x: [N, 8]
  out relu(xs)
}
"""

WARNS = """\
model Warns() {
  in x: [N, 8]
  a, _rest = chunk(x, 2, dim=1)
  out relu(a)
}
"""


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding good.arch, bad.arch and warns.arch, made the working directory."""
    monkeypatch.chdir(tmp_path)
    for name, text in (("good.arch", GOOD), ("bad.arch", BAD), ("warns.arch", WARNS)):
        (tmp_path / name).write_text(text)
    return tmp_path


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``archdsl *argv``."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ok(here: Path, capsys: pytest.CaptureFixture) -> None:
    """A good spec: one ok line per model on stdout, exit 0."""
    assert run(capsys, "check", "good.arch") == (0, "good.arch: Good: ok (1 nodes, 36 parameters)\n", "")


def test_spec_error(here: Path, capsys: pytest.CaptureFixture) -> None:
    """A spec error prints like a compiler on stderr and exits 1."""
    code, out, err = run(capsys, "check", "bad.arch")
    assert (code, out) == (1, "")
    assert err == """\
bad.arch:3:12: error: unknown name 'xs'
    3 |   out relu(xs)
      |            ^~
  hint: did you mean 'x'?
"""


def test_warnings_do_not_fail(here: Path, capsys: pytest.CaptureFixture) -> None:
    """An unused chunk output is a warning: printed with its excerpt, exit status still 0."""
    code, out, err = run(capsys, "check", "warns.arch")
    assert code == 0
    assert out == "warns.arch: Warns: ok (2 nodes, 0 parameters, 1 warning)\n"
    assert err.startswith("warns.arch:3:14: warning: output 'chunk_1' of chunk node 'chunk_0' is never used\n"
                          "    3 |   a, _rest = chunk(x, 2, dim=1)\n")


@pytest.mark.parametrize("argv", [
    ("check", "missing.arch"),
    ("check", "good.arch", "missing.arch"),
    ("check", "good.arch", "-m", "Goood"),
    ("check", "good.arch", "-m", "Good", "--param", "n"),
    ("check", "good.arch", "-m", "Good", "--param", "m=3"),
    ("check", "good.arch", "-m", "Good", "--param", "n=four"),
    ("check", "good.arch", "--param", "sizes=[1,"),
    ("check", "good.arch", "--param", "sizes=(1+2)"),
], ids=["missing-file", "missing-among-others", "unknown-model", "param-syntax", "unknown-param",
        "param-type", "param-unparsable", "param-not-literal"])
def test_usage_errors_exit_2(here: Path, capsys: pytest.CaptureFixture, argv: tuple[str, ...]) -> None:
    """Usage errors exit 2, even when they happen inside check's loop over files; never a traceback."""
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "error:" in err and "Traceback" not in err


def test_worst_status_wins(here: Path, capsys: pytest.CaptureFixture) -> None:
    """With several files, every file is checked and the worst status is returned."""
    code, out, err = run(capsys, "check", "good.arch", "bad.arch", "missing.arch")
    assert code == 2
    assert out == "good.arch: Good: ok (1 nodes, 36 parameters)\n"
    assert "bad.arch:3:12: error" in err and "no such spec file: missing.arch" in err


def test_params_reach_the_model(here: Path, capsys: pytest.CaptureFixture) -> None:
    """Literal --param values in .arch syntax."""
    code, out, _ = run(capsys, "check", "good.arch", "-m", "Good", "--param", "n=2", "--param", "sizes=[3, 4]")
    assert (code, out) == (0, "good.arch: Good: ok (1 nodes, 18 parameters)\n")


def test_json_output(here: Path, capsys: pytest.CaptureFixture) -> None:
    """``--format json``: one valid document on stdout with every diagnostic's message, span and hint."""
    code, out, err = run(capsys, "check", "good.arch", "bad.arch", "warns.arch", "--format", "json")
    assert (code, err) == (1, "")
    doc = json.loads(out)
    assert doc["ok"] is False
    assert [(f["file"], f["ok"]) for f in doc["files"]] == [("good.arch", True), ("bad.arch", False),
                                                            ("warns.arch", True)]
    assert doc["files"][0]["models"] == [{"model": "Good", "nodes": 1, "params": 36, "warnings": 0}]
    error, warning = doc["diagnostics"]
    assert error == {"file": "bad.arch", "severity": "error", "message": "unknown name 'xs'",
                     "span": {"file": "bad.arch", "line": 3, "column": 12, "end_line": 3, "end_column": 14},
                     "hint": "did you mean 'x'?", "notes": []}
    assert warning["severity"] == "warning" and warning["span"]["line"] == 3


def test_json_output_for_usage_errors(here: Path, capsys: pytest.CaptureFixture) -> None:
    """A missing file in JSON mode: still a document, status 2."""
    code, out, _ = run(capsys, "check", "missing.arch", "--format", "json")
    assert code == 2
    assert json.loads(out)["diagnostics"][0]["message"] == "no such spec file: missing.arch"


def test_zoo_names(here: Path, capsys: pytest.CaptureFixture) -> None:
    """A zoo model name checks that model only; an unknown name is a usage error with a suggestion."""
    code, out, _ = run(capsys, "check", "resnet18")
    assert (code, out) == (0, "resnet18: ok (69 nodes, 11,689,512 parameters)\n")
    code, _, err = run(capsys, "check", "resnet81")
    assert code == 2
    assert err == "error: no such spec file or zoo model: resnet81\n  hint: did you mean 'resnet18'?\n"
