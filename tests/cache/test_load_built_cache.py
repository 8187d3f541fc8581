"""load_built through the compile cache: graph.json bytes verified once are not verified again; others are."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import archdsl
from archdsl import saving
from archdsl.backends.torch.build import GraphThunk
from archdsl.errors import UsageError
from archdsl.saving import GRAPH_FILE, WEIGHTS_FILE, load_built, save_built

SPEC = """\
model Small(num_classes: int = 3) {
  in image: [N, 3, H, W]
  stem = seq[Conv2d(4, 3, padding=1, bias=false), BatchNorm2d()]
  fc = Linear(num_classes)
  out image |> stem |> relu |> AdaptiveAvgPool2d(1) |> flatten |> fc
}
"""


@pytest.fixture
def built(tmp_path: Path) -> Path:
    graph = archdsl.compile(SPEC)
    save_built(graph, archdsl.build(graph, seed=5), tmp_path / "m")
    return tmp_path / "m"


def fresh_load(folder: Path, **kwargs) -> torch.nn.Module:
    """load_built as the first load of this graph.json in a process (the in-process memo emptied)."""
    saving._LOADED.clear()
    return load_built(folder, **kwargs)


def same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    assert type(a) is type(b) and a.archdsl_source == b.archdsl_source and a.training == b.training
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.randn(2, 3, 8, 8)
    a.eval(), b.eval()
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


def test_hit_skips_verifying_the_same_bytes(built: Path, monkeypatch) -> None:
    with monkeypatch.context() as m:
        m.setenv("ARCHDSL_NO_CACHE", "1")
        plain = fresh_load(built)
    fresh_load(built)                                  # verifies and fills the cache

    def refuse(*args, **kwargs):
        raise AssertionError("graph.json verified again although its bytes are in the cache")

    monkeypatch.setattr(saving, "_read_graph", refuse)
    hit = fresh_load(built)
    assert isinstance(hit.__dict__["archdsl_graph"], GraphThunk)
    same(plain, hit)
    assert hit.archdsl_graph == plain.archdsl_graph
    assert hasattr(fresh_load(built, check_inputs=False), "archdsl_graph")
    with pytest.raises(AssertionError, match="verified again"):      # check_inputs is part of the key
        fresh_load(built, check_inputs=True)


def test_changed_bytes_are_verified_again(built: Path, monkeypatch) -> None:
    fresh_load(built)
    path = built / GRAPH_FILE
    text = path.read_text()
    calls = []
    real = saving._read_graph
    monkeypatch.setattr(saving, "_read_graph", lambda *a, **k: calls.append(1) or real(*a, **k))
    path.write_text(text + "\n")                        # the same graph in other bytes: verified
    fresh_load(built)
    assert calls == [1]
    path.write_text(text.replace('"relu"', '"no_such_op"'))     # hostile bytes: the clear error, cache or not
    with pytest.raises(UsageError, match="is not a valid archdsl graph"):
        fresh_load(built)


def test_weights_are_checked_on_a_hit(built: Path, tmp_path: Path) -> None:
    fresh_load(built)
    other = archdsl.compile(SPEC, num_classes=5)
    save_built(other, archdsl.build(other), tmp_path / "other")
    shutil.copy(tmp_path / "other" / WEIGHTS_FILE, built / WEIGHTS_FILE)
    with pytest.raises(UsageError, match=r"does not fit.*'fc.weight' is F32\[5, 4\], the graph declares F32\[3, 4\]"):
        fresh_load(built)


def test_collapse_train_build_loads_from_the_cache(tmp_path: Path) -> None:
    graph = archdsl.zoo.compile("sesr_m5_x2")
    module = archdsl.build(graph, collapse_train=True)
    save_built(graph, module, tmp_path / "s")
    first, again = fresh_load(tmp_path / "s"), fresh_load(tmp_path / "s")
    assert type(first).__name__ == type(again).__name__ == "CollapsedTraining"
    x = torch.randn(1, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(first(x), again(x))


def test_hit_in_a_fresh_process_neither_verifies_nor_generates(built: Path, tmp_path: Path) -> None:
    script = (f"import sys, archdsl\nm = archdsl.load_built({str(built)!r})\n"
              "print(float(sum(t.double().sum() for t in m.state_dict().values())))\n"
              "print(sorted(n for n in ('archdsl.verify', 'archdsl.backends.torch.codegen', 'archdsl.elaborate') "
              "if n in sys.modules))\n")
    env = {**os.environ, "ARCHDSL_CACHE_DIR": str(tmp_path / "cache")}
    first = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    second = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert first.stdout.splitlines()[0] == second.stdout.splitlines()[0]
    assert "archdsl.verify" in first.stdout.splitlines()[1]
    assert second.stdout.splitlines()[1] == "[]", second.stdout
