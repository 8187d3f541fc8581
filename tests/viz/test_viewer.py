"""``archdsl viz --html``: one self-contained page (no network), a tree of the author's blocks with
collapsible blocks, per-layer details for hover, search; checked as HTML here and in a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

import archdsl
from archdsl.cli import main
from archdsl.viewer import graph_html

SPEC = """
block Unit(width: int) {
  "A linear layer and a ReLU."
  in x: [N, C]
  fc = Linear(width)
  out x |> fc |> relu
}
model Net() {
  "Three units and a head."
  in x: [N, 8]
  blocks = [Unit(8) for i in range(3)]
  head = Linear(3)
  out x |> blocks |> Dropout(0.1) |> head
}
"""


class _Page(HTMLParser):
    """Collects tags, their attributes, and the JSON details script."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.script: list[str] = []
        self._in_details = False

    def handle_starttag(self, tag: str, attrs) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_details = tag == "script" and dict(attrs).get("id") == "details"

    def handle_data(self, data: str) -> None:
        if self._in_details:
            self.script.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_details = False


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("viewer") / "net.arch"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def page(spec_file: Path) -> str:
    return graph_html(archdsl.compile(spec_file), depth=1, drawing=False)


def parsed(text: str) -> _Page:
    p = _Page()
    p.feed(text)
    return p


def test_blocks_are_collapsible_and_open_to_the_depth(page: str) -> None:
    tags = parsed(page).tags
    blocks = {a["data-path"]: a for t, a in tags if t == "details"}
    assert set(blocks) == {"blocks", "blocks.0", "blocks.1", "blocks.2"}
    assert all("open" not in a for a in blocks.values())            # depth 1: everything starts closed
    opened = parsed(graph_html(archdsl.compile(SPEC), depth=2, drawing=False)).tags
    assert [a["data-path"] for t, a in opened if t == "details" and "open" in a] == [   # a list entry is one
        "blocks", "blocks.0", "blocks.1", "blocks.2"]                                   # level with its list


def test_every_layer_has_hover_details_with_its_spec_line(page: str) -> None:
    p = parsed(page)
    details = json.loads("".join(p.script))
    rows = [a for t, a in p.tags if t == "div" and "node" in a.get("class", "")]
    assert len(rows) == len(details) == 8                          # 3 x (fc, relu), dropout, head
    fc = next(d for d in details if d["name"] == "blocks.0.fc")
    assert fc["op"] == "linear" and fc["attributes"]["out_features"] == 8
    assert fc["inputs"] == ["[N, 8]"] and fc["outputs"] == ["[N, 8]"]
    assert fc["parameters"] == ["weight [8, 8] float32", "bias [8] float32"] and fc["params"] == "72"
    assert fc["where"].endswith(":5\nfc = Linear(width)")
    drop = next(d for d in details if d["op"] == "dropout")
    assert drop["attributes"]["p"] == 0.1


def test_page_is_self_contained(page: str, spec_file: Path) -> None:
    for text in (page, graph_html(archdsl.compile(spec_file), depth=2)):       # with the inline drawing too
        tags = parsed(text).tags
        assert not [a for _, a in tags if "src" in a or "href" in a]
        assert not re.findall(r"https?://", re.sub(r"xmlns(:\w+)?=\"http://www\.w3\.org/[^\"]*\"", "", text))
        assert "default-src 'none'" in text
    assert "<svg" in graph_html(archdsl.compile(spec_file), depth=2)


def test_cli_writes_the_page(spec_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "net.html"
    assert main(["viz", str(spec_file), "--html", str(out), "--input", "N=4"]) == 0
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and "[4, 8]" in text and "Three units and a head." in text


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.browser
def test_page_in_headless_chromium(spec_file: Path, tmp_path: Path) -> None:
    """A real browser runs the page: a click expands a block, search marks matches, a screenshot has ink."""
    exe = _chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: CI installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    out = tmp_path / "net.html"
    out.write_text(graph_html(archdsl.compile(spec_file), depth=1))
    flags = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}"]
    def dom(fragment: str) -> str:
        run = subprocess.run([*flags, "--dump-dom", out.as_uri() + fragment], capture_output=True, text=True,
                             timeout=60)
        assert 'data-ready="1"' in run.stdout, run.stderr[-2000:]
        return run.stdout

    clicked = dom("#toggle=blocks&toggle=blocks.1")
    assert re.findall(r'<details data-path="([^"]+)" open=""', clicked) == ["blocks", "blocks.1"]
    searched = dom("#search=fc")
    assert searched.count('class="row node fam-linear match"') == 3          # blocks.0-2.fc, not head
    assert 'class="row node fam-linear hidden"' in searched                   # head is filtered out
    url = out.as_uri() + "#toggle=blocks"
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1000,700", url], capture_output=True,
                   timeout=60, check=True)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 5000             # not a blank page


def test_training_and_deploy_forms_side_by_side(tmp_path: Path) -> None:
    """--diff with --html: the training form and the simplified deploy form as two trees on one page."""
    spec = tmp_path / "cbn.arch"
    spec.write_text("model M() {\n  in x: [N, 3, H, W]\n  conv = Conv2d(8, 3, padding=1, bias=false)\n"
                    "  bn = BatchNorm2d()\n  out x |> conv |> bn |> relu\n}\n")
    out = tmp_path / "m.html"
    assert main(["viz", str(spec), "--diff", "--html", str(out), "--input", "N=1,H=8,W=8"]) == 0
    text = out.read_text()
    columns = [a for t, a in parsed(text).tags if t == "div" and a.get("class") == "tree"]
    assert len(columns) == 2
    assert "<h2>training form <small>" in text and "<h2>deploy form (deploy) <small>" in text
    assert "3 ops</small>" in text and "2 ops</small>" in text          # BatchNorm folded into the conv
