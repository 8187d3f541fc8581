"""``archdsl simplify``: the deploy folder (graph, module source, weights, deploy spec, report), and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import archdsl
from archdsl.cli import main
from archdsl.testing import compare_outputs, randomize

SPEC = """
block RepBlock(c: int) {
  "3x3 and 1x1 conv-BN branches and a BN identity, summed, then ReLU."
  in x: [N, C, H, W]
  out relu(x |> reparam {
    dense = seq[Conv2d(c, 3, padding=1, bias=false), BatchNorm2d()]
    point = seq[Conv2d(c, 1, bias=false), BatchNorm2d()]
    identity = BatchNorm2d() if C == c
  })
}
model Tiny() {
  in image: [N, 3, H, W]
  stem = RepBlock(8)
  body = seq[RepBlock(8), Dropout(0.1), RepBlock(8)]
  fc = Linear(4)
  out image |> stem |> body |> AdaptiveAvgPool2d(1) |> flatten |> fc
}
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.arch"
    path.write_text(SPEC)
    return path


def test_structural_simplify_writes_a_loadable_deploy_folder(spec: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "deploy"
    assert main(["simplify", str(spec), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "merge-branches (3 rewrites)" in printed and "structural mode" in printed
    assert sorted(p.name for p in out.iterdir()) == ["deploy.arch", "graph.json", "model.py", "report.txt",
                                                      "weights.safetensors"]
    module = archdsl.load_built(out)
    assert sorted(module.state_dict()) == ["body.0.reparam_conv.bias", "body.0.reparam_conv.weight",
                                           "body.2.reparam_conv.bias", "body.2.reparam_conv.weight",
                                           "fc.bias", "fc.weight", "stem.reparam_conv.bias",
                                           "stem.reparam_conv.weight"]
    assert main(["check", str(out / "deploy.arch")]) == 0            # the deploy spec is a valid spec
    again = archdsl.compile(out / "deploy.arch")
    assert sorted(again.params) == sorted(module.state_dict())
    report = (out / "report.txt").read_text()
    assert "stem.dense + stem.point -> stem.reparam_conv" in report
    assert "body.2.dense + body.2.point + body.2.identity -> body.2.reparam_conv" in report


def test_weight_mode_deploy_computes_the_training_outputs(spec: Path, tmp_path: Path, capsys) -> None:
    trained = tmp_path / "trained"
    graph = archdsl.compile(spec)
    model = randomize(archdsl.build(graph), seed=3).eval()
    archdsl.save_built(graph, model, trained)
    out = tmp_path / "deploy"
    assert main(["simplify", str(spec), "--weights", str(trained / "weights.safetensors"), "-o", str(out),
                 "--verify"]) == 0
    assert "weight mode" in capsys.readouterr().out
    deploy = archdsl.load_built(out).eval()
    x = torch.randn(2, 3, 11, 10, generator=torch.Generator().manual_seed(0))
    (error,) = compare_outputs(model, deploy, [x])
    assert error <= 1e-5


def test_json_report_and_pass_lists(spec: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "folded"
    assert main(["simplify", str(spec), "--passes", "drop-eval-identities,dce", "-o", str(out),
                 "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passes"][0]["pass"] == "drop-eval-identities" and report["passes"][0]["rewrites"] == 1
    assert (out / "report.json").is_file()


def test_a_zoo_name_simplifies(tmp_path: Path, capsys) -> None:
    assert main(["simplify", "repvgg_a0", "-o", str(tmp_path / "r")]) == 0
    assert "params 9.11M -> 8.31M" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["--passes", "fold-bnn"], "unknown pass or pipeline 'fold-bnn'"),
    (["--weights", "missing.safetensors"], "no such weights file"),
])
def test_usage_errors(spec: Path, tmp_path: Path, capsys, args: list[str], message: str) -> None:
    assert main(["simplify", str(spec), "-o", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_weights_of_another_model_are_refused(spec: Path, tmp_path: Path, capsys) -> None:
    other = tmp_path / "other"
    archdsl.save_built(archdsl.compile("resnet18"), archdsl.build("resnet18"), other)
    assert main(["simplify", str(spec), "--weights", str(other / "weights.safetensors"), "-o",
                 str(tmp_path / "x")]) == 2
    assert "does not fit model Tiny" in capsys.readouterr().err


def test_a_false_reparam_claim_exits_1_with_a_located_error(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.arch"
    bad.write_text(SPEC.replace("point = seq[Conv2d(c, 1, bias=false), BatchNorm2d()]",
                                "point = seq[Conv2d(c, 1, bias=false), relu]"))
    assert main(["simplify", str(bad), "-o", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:5:17: error: the reparam block at stem cannot be merged" in err
    assert "reaches relu" in err and not (tmp_path / "x").exists()
