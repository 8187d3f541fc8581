"""archdsl build --collapse-train: the saved folder loads as the collapsed-training module (same state_dict,
outputs and gradients as the expanded form); --target onnx refuses the flag with a located usage error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import archdsl
from archdsl.cli import main
from archdsl.passes.collapse_train import CollapsedTraining
from archdsl.testing.equivalence import relative_error

SPEC = """model M() {
  in x: [N, 3, H, W]
  e = Conv2d(48, 3, padding=1)
  s = Conv2d(3, 1)
  k = Conv2d(4, 3, padding=1)
  out x |> e |> s |> relu |> k
}
"""


def test_build_collapse_train_saves_and_loads_the_collapsed_trainer(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "m.arch"
    spec.write_text(SPEC)
    assert main(["build", str(spec), "--collapse-train", "-o", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "collapse-train: 1 linear region(s) train collapsed" in out
    assert "e + s -> one 3x3 conv: 1,440 -> 81 MACs per output pixel" in out
    assert main(["build", str(spec), "-o", str(tmp_path / "e")]) == 0
    capsys.readouterr()
    wrapped, expanded = archdsl.load_built(tmp_path / "c"), archdsl.load_built(tmp_path / "e")
    assert isinstance(wrapped, CollapsedTraining) and not isinstance(expanded, CollapsedTraining)
    state = {k: v.double() for k, v in wrapped.state_dict().items()}
    assert set(state) == set(expanded.state_dict())
    for k, v in expanded.state_dict().items():                    # same seed, same initial weights
        assert torch.equal(v, wrapped.state_dict()[k])
    wrapped.double(), expanded.double()
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    ya, yb = expanded(x), wrapped(x)
    assert relative_error(ya, yb) <= 1e-10
    ga = torch.autograd.grad(ya.square().sum(), list(expanded.parameters()))
    gb = torch.autograd.grad(yb.square().sum(), list(wrapped.inner.parameters()))
    assert all((a - b).norm() <= 1e-10 * a.norm() for a, b in zip(ga, gb, strict=True))
    checked = archdsl.load_built(tmp_path / "c", check_inputs=True)
    with pytest.raises(ValueError, match="axis 1 should be 3"):   # input checks run before the collapsed forward
        checked(torch.randn(2, 5, 7, 6))


def test_build_collapse_train_without_regions_says_so(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "b.arch"                                     # a bottleneck is cheaper kept apart
    spec.write_text(SPEC.replace("Conv2d(48, 3, padding=1)", "Conv2d(2, 1)").replace("Conv2d(3, 1)", "Conv2d(3, 3)"))
    assert main(["build", str(spec), "--collapse-train", "-o", str(tmp_path / "o")]) == 0
    assert "0 linear region(s) train collapsed (none is cheaper as one convolution" in capsys.readouterr().out


def test_collapse_train_with_onnx_target_is_a_usage_error(tmp_path: Path, capsys) -> None:
    code = main(["build", "sesr_m5_x2", "--collapse-train", "--target", "onnx", "-o", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert code == 2 and "--collapse-train applies to --target torch" in err and "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists()
