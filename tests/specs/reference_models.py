"""Helpers for the zoo tests: the reference figures in tests/data (zoo.md, state_dict listings) and small inputs."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from archdsl import zoo
from archdsl.analysis import bind
from archdsl.errors import ShapeError
from archdsl.ir.graph import Graph
from archdsl.ir.symbols import sizes_near

# Reference facts live in the repository (tests stand on their own): the zoo table with the references'
# parameter counts and GMACs, and torchvision/timm state_dict listings, both written from the references.
DATA = Path(__file__).resolve().parents[1] / "data"
ZOO_TABLE = DATA / "zoo.md"
STATE_DICTS = DATA / "state_dicts"
SIDES = (32, 48, 64, 80, 96, 128, 160, 192, 224, 256)   # spatial sizes tried for the smallest valid input
_ROW = re.compile(r"^\|\s*(torchvision|timm)\s+(\w+)(?:\s+\(([^)]*)\))?\s*\|\s*([\d,]*)\s*\|\s*([\d,]*)\s*\|"
                  r"\s*([\d.]*)\s*\|")


@dataclass(frozen=True)
class ZooRow:
    """One row of zoo.md: where the reference comes from, its parameter and state_dict counts, its GMACs."""

    source: str
    params: int
    entries: int | None
    gmacs: float | None


@dataclass(frozen=True)
class StateDictListing:
    """A reference state_dict listing: header counts and ``key -> (dtype, shape)``."""

    params: int
    entries: int
    items: dict[str, tuple[str, tuple[int, ...]]]


@functools.cache
def zoo_table() -> dict[str, ZooRow]:
    """The rows of tests/data/zoo.md by model name (the training form where a model has two rows)."""
    rows: dict[str, ZooRow] = {}
    for line in ZOO_TABLE.read_text(encoding="utf-8").splitlines():     # missing: the tests fail, not skip
        m = _ROW.match(line)
        if m is None:
            continue
        source, name, note, params, entries, gmacs = m.groups()
        key = name if note is None or note.startswith("train") else f"{name} ({note})"
        rows[key] = ZooRow(source, _int(params), _int(entries) if entries else None,
                           float(gmacs) if gmacs else None)
    return rows


def _int(text: str) -> int:
    return int(text.replace(",", ""))


@functools.cache
def state_dict_listing(name: str) -> StateDictListing | None:
    """The reference listing tests/data/state_dicts/<name>.txt, or None when the zoo model has none."""
    path = STATE_DICTS / f"{name}.txt"
    if not path.is_file():
        return None
    header, *lines = path.read_text(encoding="utf-8").splitlines()
    counts = re.search(r"(\d+) parameters, (\d+) state_dict entries", header)
    assert counts is not None, f"unreadable header in {path}: {header!r}"
    items = {}
    for line in filter(None, lines):
        key, dtype, shape = line.split(" ", 2)
        items[key] = (dtype, tuple(int(d) for d in re.findall(r"\d+", shape)))
    return StateDictListing(int(counts.group(1)), int(counts.group(2)), items)


def module_listing(module: torch.nn.Module) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``key -> (dtype, shape)`` of a module's state_dict, in the listing's spelling."""
    return {k: (str(v.dtype).removeprefix("torch."), tuple(v.shape)) for k, v in module.state_dict().items()}


@functools.cache
def compiled(name: str) -> Graph:
    """The zoo model's Graph, compiled once per test session (Graphs are immutable)."""
    return zoo.compile(name)


def meta_module(name: str) -> torch.nn.Module:
    """The zoo model built on the meta device: names, dtypes and shapes without allocating weights."""
    from archdsl.backends.torch.build import build_module

    with torch.device("meta"):
        return build_module(compiled(name), seed=None)


def sizes(graph: Graph, side: int, batch_size: int = 1) -> dict[str, int]:
    """Sizes for the symbolic input dims: ``batch_size`` for the leading (batch) dims, the others so that each
    axis is ``side`` long (``P = side // 32`` for an axis declared ``32*P``)."""
    return sizes_near(graph.inputs, side, batch_size)


def small_sizes(graph: Graph, batch_size: int = 1) -> dict[str, int]:
    """:func:`sizes` with the smallest side in ``SIDES`` for which every shape in the graph is positive."""
    for side in SIDES:
        env = sizes(graph, side, batch_size)
        try:
            bind(graph, env)
        except ShapeError:
            continue
        return env
    raise AssertionError(f"{graph.name}: no input side in {SIDES} is large enough")


def example_inputs(graph: Graph, env: dict[str, int], seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random float inputs (zeros for integer inputs such as token ids) with the bound shapes."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for t in bind(graph, env).inputs.values():
        dtype = getattr(torch, t.dtype)
        shape = tuple(int(d) for d in t.shape)
        out.append(torch.randn(shape, generator=gen, dtype=dtype) if dtype.is_floating_point
                   else torch.zeros(shape, dtype=dtype))
    return tuple(out)


def relative_error(ref: torch.Tensor, out: torch.Tensor) -> float:
    """``||ref - out|| / ||ref||`` in float64."""
    ref, out = ref.double(), out.double()
    return float((ref - out).norm() / ref.norm().clamp_min(1e-30))
