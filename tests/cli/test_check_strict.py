"""``archdsl check``/``build``: warnings printed like errors, ``--strict``, no-model files, several errors per run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archdsl.cli import main

WARNS = """\
model Warns() {
  in x: [N, 8]
  a, _rest = chunk(x, 2, dim=1)
  out relu(a)
}
"""

LIBRARY = """\
block Twice() {
  in x: [N, C]
  out x + x
}
"""

TWO_BAD_MODELS = """\
model A() {
  in x: [N, 8]
  out relu(y)
}

model B() {
  in x: [N, 8]
  out tanh(z)
}
"""


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with warns.arch, library.arch and two_bad.arch, made the working directory."""
    monkeypatch.chdir(tmp_path)
    for name, text in (("warns.arch", WARNS), ("library.arch", LIBRARY), ("two_bad.arch", TWO_BAD_MODELS)):
        (tmp_path / name).write_text(text)
    return tmp_path


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``archdsl *argv``."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_strict_turns_warnings_into_errors(here: Path, capsys: pytest.CaptureFixture) -> None:
    """The same diagnostic, now an error that says why, and exit 1."""
    code, _, err = run(capsys, "check", "warns.arch", "--strict")
    assert code == 1
    assert err == """\
warns.arch:3:14: error: output 'chunk_1' of chunk node 'chunk_0' is never used
    3 |   a, _rest = chunk(x, 2, dim=1)
      |              ^~~~~~~~~~~~~~~~~~
  hint: use it, or compute only the outputs that are needed (an error because of --strict)
"""


def test_strict_in_json(here: Path, capsys: pytest.CaptureFixture) -> None:
    """JSON says not ok, and the diagnostic's severity is error."""
    code, out, _ = run(capsys, "check", "warns.arch", "--strict", "--format", "json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False and doc["files"][0]["ok"] is False
    assert [d["severity"] for d in doc["diagnostics"]] == ["error"]


def test_strict_without_warnings_passes(here: Path, capsys: pytest.CaptureFixture) -> None:
    """--strict changes nothing for a clean spec."""
    (here / "good.arch").write_text("model Good() {\n  in x: [N, 8]\n  out relu(x)\n}\n")
    assert run(capsys, "check", "good.arch", "--strict") == (0, "good.arch: Good: ok (1 nodes, 0 parameters)\n", "")


def test_a_file_without_a_model_says_so(here: Path, capsys: pytest.CaptureFixture) -> None:
    """Only blocks: nothing would be checked, so check says so and fails (it printed nothing and exited 0)."""
    code, out, err = run(capsys, "check", "library.arch")
    assert (code, out) == (1, "")
    assert err == ("error: library.arch defines no model, so there is nothing to check\n"
                   "  hint: a spec is built from a `model Name(...) { ... }`; blocks are elaborated only when a "
                   "model uses them (a file of blocks is a library for other specs to import)\n")


def test_errors_of_independent_models_come_together(here: Path, capsys: pytest.CaptureFixture) -> None:
    """Two broken models: both errors in one run, in file order."""
    code, out, err = run(capsys, "check", "two_bad.arch")
    assert (code, out) == (1, "")
    assert [line for line in err.splitlines() if ": error:" in line] == [
        "two_bad.arch:3:12: error: unknown name 'y'", "two_bad.arch:8:12: error: unknown name 'z'"]


def test_build_prints_warnings_and_strict_refuses(here: Path, capsys: pytest.CaptureFixture) -> None:
    """build shows the warning on stderr and builds; with --strict it stops before writing anything."""
    code, out, err = run(capsys, "build", "warns.arch", "-o", "built")
    assert code == 0 and "wrote" in out
    assert err.startswith("warns.arch:3:14: warning: output 'chunk_1' of chunk node 'chunk_0' is never used\n")
    code, _, err = run(capsys, "build", "warns.arch", "-o", "built2", "--strict")
    assert code == 1 and "error: output 'chunk_1'" in err
    assert not (here / "built2").exists()


def test_a_dead_value_is_one_warning(here: Path, capsys: pytest.CaptureFixture) -> None:
    """The elaborator's dead-value warning, not again as the verifier's unused node result."""
    (here / "dead.arch").write_text("model M() {\n  in x: [N, 3]\n  y = relu(x)\n  out x\n}\n")
    code, out, err = run(capsys, "check", "dead.arch")
    assert (code, out) == (0, "dead.arch: M: ok (1 nodes, 0 parameters, 1 warning)\n")
    assert err.startswith("dead.arch:3:3: warning: value 'y' is defined but never used\n") and err.count("warning:") == 1
    code, out, _ = run(capsys, "check", "dead.arch", "--strict")
    assert (code, out) == (1, "dead.arch: M: not ok under --strict (1 nodes, 0 parameters, 1 warning)\n")
