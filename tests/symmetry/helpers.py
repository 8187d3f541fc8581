"""Shared fixtures of the symmetry tests: the small specs, compiled once, and their harnesses."""

from __future__ import annotations

import functools
from pathlib import Path

import archdsl
from archdsl import zoo
from archdsl.symmetry import derive
from archdsl.symmetry.check import Harness

SMALL = Path(__file__).resolve().parents[1] / "data" / "symmetry" / "small.arch"
SMALL_MODELS = ("mlp", "tiny_resnet", "grouped", "segments", "tiny_vit", "reparam_net", "bottleneck")
TIGHT = 1e-9          # soundness: relative output error of a symmetry
CHANGED = 1e-3        # tightness: relative output error of a non-symmetry


@functools.cache
def graph(name: str):
    """A small test model (or a zoo model) compiled once."""
    return zoo.compile(name) if zoo.spec_path(name) else archdsl.compile(SMALL, name)


@functools.cache
def spec(name: str):
    """Its derived symmetry spec."""
    return derive(graph(name))


@functools.cache
def harness(name: str) -> Harness:
    """Its float64 eval-mode module with random weights and inputs."""
    return Harness.build(graph(name))
