"""The README's examples are real: its .arch and YAML snippets compile, its Python snippet runs."""

from __future__ import annotations

import re
from pathlib import Path

import archdsl

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


def test_arch_example_compiles() -> None:
    (text,) = _blocks("arch")
    graph = archdsl.compile(text, "tiny_resnet")
    assert list(graph.params)[:2] == ["conv1.weight", "bn1.weight"]
    assert "layer2.0.downsample.0.weight" in graph.params


def test_yaml_example_compiles(tmp_path: Path) -> None:
    (text,) = _blocks("yaml")
    (tmp_path / "lib.arch").write_text("let unused = 1\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    graph = archdsl.compile(spec)
    assert [str(d) for d in graph.output_types()["features"].shape] == ["N", "4", "H", "W"]


def test_python_example_runs(monkeypatch) -> None:
    (text,) = _blocks("python")
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    exec(compile(text, "README.md", "exec"), {})  # noqa: S102 - the README's own example


def test_zoo_is_reachable_from_the_package() -> None:
    assert "resnet50" in archdsl.zoo.names()
