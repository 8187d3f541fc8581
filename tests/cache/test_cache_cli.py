"""``archdsl cache info|clear``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import archdsl
from archdsl import compilecache
from archdsl.cli import main


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_info_and_clear(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "m.arch"
    spec.write_text("model M() {\n  in x: [N, 4]\n  fc = Linear(2)\n  out x |> fc\n}\n")
    code, out = run(capsys, "cache", "info")
    assert code == 0 and f"compile cache: {compilecache.cache_dir()}" in out and "entries: 0 of at most 256" in out
    archdsl.build(spec)
    code, out = run(capsys, "cache", "info", "--format", "json")
    state = json.loads(out)
    assert code == 0 and state["enabled"] and state["entries"] == 1 and state["bytes"] > 0
    code, out = run(capsys, "cache", "clear")
    assert code == 0 and out.startswith("removed 1 entry from ")
    assert compilecache.info()["entries"] == 0
    code, out = run(capsys, "cache", "clear")
    assert out.startswith("removed 0 entries")


def test_off(monkeypatch, capsys) -> None:
    monkeypatch.setenv("ARCHDSL_NO_CACHE", "1")
    for action in ("info", "clear"):
        code, out = run(capsys, "cache", action)
        assert code == 0 and out.startswith("compile cache: off")


def test_help_and_bad_action(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["cache", "--help"])
    assert exc.value.code == 0 and "ARCHDSL_CACHE_DIR" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["cache", "purge"])
    assert exc.value.code == 2
