"""Every file in examples/ works as the tutorial says: specs check, build and run; scripts run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import archdsl
from archdsl.ir.symbols import sizes_near

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPECS = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".arch", ".yaml", ".yml"))
SCRIPTS = sorted(EXAMPLES.glob("*.py"))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_example_spec_builds_and_runs(path: Path) -> None:
    graphs = archdsl.compile_all(path)
    assert graphs, f"{path.name} defines no model"
    for graph in graphs.values():
        module = archdsl.build(graph).eval()
        sizes = sizes_near(graph.inputs, 32, batch=2)
        inputs = [_random_input(t, sizes) for t in graph.inputs.values()]
        with torch.no_grad():
            out = module(*inputs)
        outs = out if isinstance(out, tuple) else (out,)
        assert all(torch.isfinite(o).all() for o in outs)


def _random_input(t: archdsl.TensorType, sizes: dict[str, int]) -> torch.Tensor:
    from archdsl.ir.dims import SymDim

    shape = [d if isinstance(d, int) else SymDim.evaluate(d, sizes) for d in t.shape]
    if t.dtype.startswith("int"):
        return torch.randint(0, 4, shape)
    return torch.randn(shape, dtype=getattr(torch, t.dtype))


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_example_script_runs(path: Path, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(path)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
