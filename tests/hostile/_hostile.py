"""Helpers for the hostile suite: run the CLI in-process, or in a subprocess under time and memory limits."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from archdsl.cli import main

SPEC = """\
model Small(classes: int = 4) {
  in x: [N, 3, H, W]
  conv = Conv2d(8, 3, padding=1)
  fc = Linear(classes)
  out x |> conv |> relu |> AdaptiveAvgPool2d(1) |> flatten |> fc
}
"""
MEMORY_CAP = 3 * 2**30          # bytes of address space a risky subprocess may map (torch needs ~1.5 GB)


@pytest.fixture()
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work inside a fresh folder holding small.arch."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small.arch").write_text(SPEC)
    return tmp_path


def cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """``archdsl ARGV`` in this process: (exit code, stdout, stderr); a traceback fails the test."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return code, out, err


def one_paragraph(err: str) -> None:
    """An error report: starts with a location or 'error:', no traceback, no blank line inside."""
    text = err.strip()
    assert text, "no message"
    assert "Traceback" not in text and "\n\n" not in text, text
    first = text.splitlines()[0]
    assert first.startswith("error: ") or ": error: " in first, first


def run_limited(argv: list[str], cwd: Path, timeout: float = 60, memory: int = MEMORY_CAP,
                python_args: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """``python -m archdsl.cli ARGV`` (or ``python ARGV``) in a subprocess with a memory cap and a hard timeout."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = [sys.executable, *argv] if python_args else [sys.executable, "-m", "archdsl.cli", *argv]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=limit, env=env, check=False, **kwargs)
