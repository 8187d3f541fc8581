"""The zoo's name index scans ``model NAME(`` headers instead of parsing every file: the scan must name exactly
the models the parser finds, in every shipped spec, and ignore look-alikes in strings, comments and bodies."""

from __future__ import annotations

from pathlib import Path

import pytest

from archdsl import zoo

ROOT = Path(__file__).resolve().parents[2]
ARCH_FILES = [p for p in zoo.spec_files() if p.suffix == ".arch"] + sorted((ROOT / "specs" / "std").glob("*.arch")) \
    + sorted((ROOT / "tests" / "data").rglob("*.arch"))


@pytest.mark.parametrize("path", ARCH_FILES, ids=lambda p: p.name)
def test_scan_names_the_models_the_parser_finds(path: Path) -> None:
    assert zoo.scan_models(path.read_text(encoding="utf-8")) == zoo.models_in(path)


def test_scan_ignores_strings_comments_and_block_bodies() -> None:
    text = '''
# model commented(x: int) {
let note = "model quoted(x: int) {"
block Unit(model: int) {
  "model in_doc(x) {"
  in x: [N, model]
  out x
}
model   spaced (c: int = 3) { in x: [N, c]; out x }
import "other.arch" as model
model last() {
  in x: [N]
  out x
}
'''
    assert zoo.scan_models(text) == ("spaced", "last")


def test_index_resolves_every_zoo_name_to_its_file() -> None:
    for path in zoo.spec_files():
        for name in zoo.models_in(path):
            assert zoo.spec_path(name) == path
    assert zoo.spec_path("no_such_model") is None
