"""``archdsl viz``: DOT to stdout, files by extension, exit codes."""

from __future__ import annotations

import pytest

from archdsl.cli import main

SPEC = """
block Unit(width: int) {
  "A linear layer and a ReLU."
  in x: [N, C]
  fc = Linear(width)
  out x |> fc |> relu
}
model Net() {
  in x: [N, 8]
  blocks = [Unit(8) for i in range(3)]
  head = Linear(3)
  out x |> blocks |> head
}
"""


@pytest.fixture
def spec(tmp_path) -> str:
    path = tmp_path / "net.arch"
    path.write_text(SPEC)
    return str(path)


def test_dot_to_stdout(spec: str, capsys) -> None:
    assert main(["viz", spec, "--depth", "1", "--input", "N=5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith('digraph "Net"') and "cluster_" not in out
    assert "\"b:blocks.0\" [label=\"blocks.0 .. 2  ×3" in out and "[5, 8]" in out


@pytest.mark.parametrize("suffix", ["svg", "dot"])
def test_writes_file(spec: str, tmp_path, suffix: str) -> None:
    out = tmp_path / f"net.{suffix}"
    assert main(["viz", spec, "-o", str(out)]) == 0
    text = out.read_text()
    assert "<svg" in text if suffix == "svg" else text.startswith("digraph")


@pytest.mark.parametrize("flags", [["-o", "net.bmp"], ["--depth", "-1"], ["--input", "N"]])
def test_bad_flags_exit_2(spec: str, flags: list[str], capsys) -> None:
    assert main(["viz", spec, *flags]) == 2
    assert "error" in capsys.readouterr().err


def test_spec_error_exits_1(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.arch"
    bad.write_text("model M() {\n  in x: [N, 8]\n  out x |> nosuchop\n}\n")
    assert main(["viz", str(bad)]) == 1
    assert "nosuchop" in capsys.readouterr().err
