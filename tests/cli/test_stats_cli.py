"""``archdsl stats``: exit codes 0/1/2, text, JSON and CSV output."""

from __future__ import annotations

import csv
import io
import json

import pytest

import archdsl
from archdsl.cli import main

SPEC = """
block Unit(width: int) {
  "A linear layer and a ReLU."
  in x: [N, C]
  fc = Linear(width)
  out x |> fc |> relu
}
model Net(width: int = 16) {
  in x: [N, 8]
  blocks = [Unit(width) for i in range(2)]
  head = Linear(3)
  out x |> blocks |> head
}
"""


@pytest.fixture
def spec(tmp_path) -> str:
    path = tmp_path / "net.arch"
    path.write_text(SPEC)
    return str(path)


def test_text_table(spec: str, capsys) -> None:
    assert main(["stats", spec, "--input", "N=4"]) == 0
    out = capsys.readouterr().out
    total = next(line for line in out.splitlines() if line.startswith("total"))
    params = archdsl.compile(spec).num_params()
    assert f"{params:,}" in total and f"{4 * (8 * 16 + 16 * 16 + 16 * 3):,}" in total
    assert "blocks.0.fc" in out and "linear" in out


def test_depth_shows_block_docs(spec: str, capsys) -> None:
    assert main(["stats", spec, "--depth", "1", "--param", "width=4"]) == 0
    out = capsys.readouterr().out
    assert "blocks.1" in out and "A linear layer and a ReLU." in out
    assert "MACs symbolic" in out


def test_json(spec: str, capsys) -> None:
    assert main(["stats", spec, "--input", "N=2", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"] == "Net" and doc["inputs"] == {"x": "[2, 8]"}
    assert doc["total"]["params"] == archdsl.compile(spec).num_params()
    assert doc["total"]["macs"] == 2 * (8 * 16 + 16 * 16 + 16 * 3)


def test_csv(spec: str, capsys) -> None:
    assert main(["stats", spec, "-m", "Net", "--format", "csv", "--depth", "1"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["name"] for r in rows] == ["blocks.0", "blocks.1", "head", "total"]
    assert rows[-1]["macs"] == "432*N"


@pytest.mark.parametrize("flags", [["--input", "N=one"], ["--input", "Q=1"], ["--depth", "0"],
                                   ["--format", "xml"], ["--param", "1=2"]])
def test_bad_flags_exit_2(spec: str, flags: list[str], capsys) -> None:
    try:
        code = main(["stats", spec, *flags])
    except SystemExit as exc:   # argparse rejects unknown choices itself
        code = exc.code
    assert code == 2
    assert capsys.readouterr().err


def test_spec_error_exits_1(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.arch"
    bad.write_text("model M() {\n  in x: [N, 8]\n  fc = Linar(3)\n  out x |> fc\n}\n")
    assert main(["stats", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.arch:3" in err and "Linar" in err
