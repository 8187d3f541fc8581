"""``archdsl test``: random weights, every pass step checked on numbers; a broken pass is caught and named."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from archdsl.cli import main
from archdsl.ir.weights import Weights
from archdsl.passes import registry
from archdsl.passes.fold_bn import FoldBatchNorm

SPEC = """
model Small() {
  in x: [N, 3, H, W]
  conv = Conv2d(4, 3, stride=2, padding=1, bias=false)
  bn = BatchNorm2d()
  out x |> reparam { a = seq[Conv2d(3, 3, padding=1), BatchNorm2d()]; b = BatchNorm2d() } |> conv |> bn |> relu
}
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "small.arch"
    path.write_text(SPEC)
    return path


def test_passes_keep_the_function(spec: Path, capsys) -> None:
    assert main(["test", str(spec), "--trials", "2", "--input", "N=2,H=9,W=8"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 2 trial(s) x 2 pass(es)") and "fold-bn, merge-branches" in out


@dataclass(frozen=True)
class OffByATenThousandth(FoldBatchNorm):
    """fold-bn with a bug: the folded weight is scaled by 1.0001."""

    def apply(self, graph, weights=None):
        result = super().apply(graph, weights)
        if result.weights is None or not result.changed:
            return result
        bad = {k: v * 1.0001 if k.endswith(".weight") else v for k, v in result.weights.items()}
        return type(result)(result.graph, Weights(bad), True, result.report)


def test_a_broken_pass_is_named_with_a_reproducer(spec: Path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(registry.PASSES, "fold-bn", OffByATenThousandth)
    assert main(["test", str(spec), "--trials", "3", "--seed", "5"]) == 1
    err = capsys.readouterr().err
    assert "FAIL: pass fold-bn (round 1) changed the function: output 0 at N=2, H=32, W=32" in err
    assert f"reproduce: archdsl test {spec} --passes deploy --seed 5 --trials 1" in err


def test_bad_arguments(spec: Path, capsys) -> None:
    assert main(["test", str(spec), "--trials", "0"]) == 2
    assert main(["test", str(spec), "--passes", "nope"]) == 2
    assert "unknown pass or pipeline 'nope'" in capsys.readouterr().err


def test_symmetry_checks_run_after_the_passes(spec: Path, capsys) -> None:
    heads = Path(__file__).resolve().parents[1] / "data" / "symmetry" / "heads.arch"
    assert main(["test", str(heads), "-m", "fused_heads", "--trials", "2"]) == 0
    out = capsys.readouterr().out
    assert "ok: symmetry (6 classes, 1 block classes): 2 random group element(s)" in out
    assert "the deploy pipeline commutes with the group (bitwise)" in out
    assert main(["test", str(spec), "--trials", "1", "--no-symmetry"]) == 0
    assert "symmetry" not in capsys.readouterr().out


def test_a_false_symmetry_fails_the_run(spec: Path, capsys, monkeypatch) -> None:
    from archdsl.symmetry.check import Harness

    monkeypatch.setattr(Harness, "error", lambda self, spec, g, keep=None: 0.5)
    assert main(["test", str(spec), "--trials", "1", "--input", "N=2,H=9,W=8"]) == 1
    assert "FAIL: symmetry" in capsys.readouterr().err
