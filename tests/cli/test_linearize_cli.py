"""archdsl linearize: report and PNG images of the linear interpreter; usage errors are located messages."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from archdsl.cli import main

SPEC = """model Tiny() {
  in x: [N, 2, H, W]
  c = Conv2d(4, 3, padding=1)
  fc = Linear(5)
  out x |> c |> relu |> MaxPool2d(2) |> AdaptiveAvgPool2d(1) |> flatten |> fc
}
"""


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and zlib.crc32(data[12:16 + length]) == struct.unpack(">I", data[16 + length:20 + length])[0]
    return struct.unpack(">II", data[16:24])


def test_classifier_report_and_votes(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "tiny.arch"
    spec.write_text(SPEC)
    save_file({"x": torch.randn(1, 2, 6, 8)}, tmp_path / "x.safetensors")
    assert main(["linearize", str(spec), "--input", str(tmp_path / "x.safetensors"), "-o", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.txt").read_text()
    assert "check error" in report and report.count("= input part") == 3
    error = float(report.split("check error ")[1].split()[0])
    assert error <= 1e-10
    assert _png_size(tmp_path / "out" / "vote_top0.png") == (8, 6)
    assert main(["linearize", str(spec), "--random", "3", "--size", "H=5,W=7", "-o", str(tmp_path / "out"),
                 "--force"]) == 0
    assert _png_size(tmp_path / "out" / "row_top2.png") == (7, 5)
    capsys.readouterr()


def test_image_to_image_rows_and_columns(tmp_path: Path, capsys) -> None:
    assert main(["linearize", "espcn_x3", "--random", "0", "--size", "H=9,W=10", "-o", str(tmp_path / "o")]) == 0
    assert _png_size(tmp_path / "o" / "response_centre.png") == (30, 27)
    assert "= input part" in (tmp_path / "o" / "report.txt").read_text()
    capsys.readouterr()


@pytest.mark.parametrize("extra, message", [
    (["--input", "missing.safetensors"], "cannot read --input missing.safetensors"),
    (["--random", "0", "--size", "H=0"], "positive sizes"),
])
def test_usage_errors(tmp_path: Path, capsys, extra: list[str], message: str) -> None:
    spec = tmp_path / "tiny.arch"
    spec.write_text(SPEC)
    assert main(["linearize", str(spec), *extra, "-o", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
