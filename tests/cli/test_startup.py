"""Start-up stays light: what each command imports, checked in a fresh interpreter (no timings here;
benchmarks/startup.py measures the times)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "numpy", "networkx", "onnx", "archdsl.backends.torch", "archdsl.passes", "archdsl.symmetry.spec")
PROBE = """
import contextlib, io, json, sys
import archdsl.cli
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        code = archdsl.cli.main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _imports(*argv: str) -> tuple[int, set[str]]:
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, cwd=ROOT,
                         timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["code"], set(result["modules"])


def _loaded(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("argv", [("--help",), ("check", "--help"), ("ops", "--help"), ("stats", "--help")])
def test_help_loads_neither_the_compiler_nor_pydantic(argv: tuple[str, ...]) -> None:
    code, modules = _imports(*argv)
    assert code == 0
    assert _loaded(modules, (*HEAVY, "pydantic", "lark", "archdsl.elaborate", "archdsl.ops", "archdsl.ir.graph")) == []


def test_simplify_help_still_lists_the_passes() -> None:
    out = subprocess.run([sys.executable, "-m", "archdsl.cli", "simplify", "--help"], capture_output=True,
                         text=True, cwd=ROOT, timeout=120, check=True).stdout
    assert "passes:" in out and "fold-bn" in out and "exact when" in out


@pytest.mark.parametrize("argv", [("check", "resnet50"), ("ir", "resnet18"), ("fmt", "specs/resnet.arch"),
                                  ("stats", "resnet18")])
def test_front_end_commands_never_import_torch_numpy_or_the_passes(argv: tuple[str, ...]) -> None:
    code, modules = _imports(*argv)
    assert code == 0
    assert _loaded(modules, HEAVY) == []
