"""``archdsl build --target onnx`` and ``archdsl check --target onnx`` (the ONNX backend from the usual verbs)."""

from __future__ import annotations

from pathlib import Path

import onnx

from archdsl.cli import main


def test_build_target_onnx_writes_a_checked_model_with_dynamic_sizes(tmp_path: Path, capsys) -> None:
    out = tmp_path / "r18.onnx"
    assert main(["build", "resnet18", "--target", "onnx", "-o", str(out), "--dynamic", "N,H,W"]) == 0
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 3, "H", "W"]
    assert main(["build", "resnet18", "--target", "onnx", "-o", str(tmp_path / "b.onnx"), "--dynamic", "N",
                 "--input", "H=64,W=64"]) == 0
    dims = [d.dim_param or d.dim_value for d in onnx.load(str(tmp_path / "b.onnx")).graph.input[0].type.tensor_type
            .shape.dim]
    assert dims == ["N", 3, 64, 64]


def test_build_target_usage_errors(tmp_path: Path, capsys) -> None:
    assert main(["build", "resnet18", "--target", "onnx", "-o", str(tmp_path / "x.onnx"), "--dynamic", "N"]) == 2
    assert "H, W must stay dynamic or be given a size" in capsys.readouterr().err
    assert main(["build", "resnet18", "--target", "onnx", "-o", str(tmp_path / "x.onnx"), "--dynamic", "Q"]) == 2
    assert "does not have" in capsys.readouterr().err
    assert main(["build", "resnet18", "-o", str(tmp_path / "d"), "--weights", "w.safetensors"]) == 2
    assert "--weights applies to --target onnx" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_check_target_onnx(capsys) -> None:
    assert main(["check", "resnet18", "mobileone_s0", "--target", "onnx"]) == 0
    assert "mobileone_s0: ok" in capsys.readouterr().out
    assert main(["check", "resnet18", "--target", "onnx", "--opset", "12"]) == 2
    assert "opset" in capsys.readouterr().err
