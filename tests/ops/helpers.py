"""Shared helpers for op tests: a one-op spec, compiled and built by archdsl, run beside a torch reference.

A spec body either holds its own ``out`` statement (``"a = Linear(4); out x |> a"``) or is one layer
expression, which the helper names ``op`` and applies to the first input (``"Conv2d(8, 3)"`` gives the
parameters ``op.weight`` and ``op.bias``). Inputs are declared with the tensors' own static shapes unless
``dims`` gives the dims text (``{"x": "N, 4, H, W"}``) to check the symbolic shape rule.
"""

from __future__ import annotations

import re

import pytest
import torch

import archdsl
from archdsl.ir.dims import SymDim
from archdsl.ir.graph import Graph

_NAME = re.compile(r"[A-Za-z_]\w*$")


def spec_text(body: str, dims: dict[str, str], dtype: str = "float32") -> str:
    """The text of a model ``OpTest`` with inputs ``dims`` (name -> dims text) and ``body``."""
    lines = [f"in {name}: {dtype}[{text}]" for name, text in dims.items()]
    if not re.search(r"(^|[;\n{])\s*out\b", body):
        lines += [f"op = {body}", f"out {next(iter(dims))} |> op"]
    else:
        lines.append(body)
    return "model OpTest() {\n  " + "\n  ".join(lines) + "\n}\n"


def static_dims(inputs: dict[str, torch.Tensor]) -> dict[str, str]:
    """Dims text giving each input its tensor's exact shape."""
    return {name: ", ".join(str(s) for s in t.shape) for name, t in inputs.items()}


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def compile_op(body: str, dims: dict[str, str], dtype: torch.dtype = torch.float32) -> Graph:
    """Compile a one-op spec; raises archdsl's ArchError family on bad attributes or shapes."""
    return archdsl.compile(spec_text(body, dims, _dtype_name(dtype)))


def build_op_spec(body: str, inputs: dict[str, torch.Tensor], dtype: torch.dtype = torch.float64,
                  dims: dict[str, str] | None = None, seed: int = 0) -> torch.nn.Module:
    """The built module (eval mode, parameters cast to ``dtype``) for a one-op spec."""
    graph = compile_op(body, dims or static_dims(inputs), dtype)
    return archdsl.build(graph, seed=seed).to(dtype).eval()


def run_op_spec(body: str, inputs: dict[str, torch.Tensor], dtype: torch.dtype = torch.float64,
                dims: dict[str, str] | None = None, train: bool = False) -> torch.Tensor:
    """Build a one-op spec and run it on ``inputs`` (cast to ``dtype``); returns the (first) output."""
    module = build_op_spec(body, inputs, dtype, dims).train(train)
    out = module(*(t.to(dtype) if t.is_floating_point() else t for t in inputs.values()))
    return out[0] if isinstance(out, tuple) else out


def output_shape(graph: Graph, inputs: dict[str, torch.Tensor]) -> tuple[int, ...]:
    """The inferred output shape with each input's named dims bound to the tensors' sizes."""
    env: dict[str, int] = {}
    for name, t in graph.inputs.items():
        for d, size in zip(t.shape, inputs[name].shape, strict=True):
            if isinstance(d, SymDim) and _NAME.match(str(d)):
                env[str(d)] = int(size)
    out = graph.value_types()[next(iter(graph.outputs.values()))]
    return tuple(d if isinstance(d, int) else SymDim.evaluate(d, env) for d in out.shape)


def check_shape_rule(body: str, inputs: dict[str, torch.Tensor], dims: dict[str, str]) -> torch.Tensor:
    """Symbolic and static shape rules both give the shape torch produces; returns torch's output."""
    out = run_op_spec(body, inputs, torch.float32)
    symbolic = output_shape(compile_op(body, dims), inputs)
    static = output_shape(compile_op(body, static_dims(inputs)), inputs)
    assert symbolic == tuple(out.shape), f"symbolic rule {symbolic} != torch {tuple(out.shape)} for {body}"
    assert static == tuple(out.shape), f"static rule {static} != torch {tuple(out.shape)} for {body}"
    return out


def expect_error(body: str, dims: dict[str, str], *fragments: str,
                 cls: type[archdsl.ArchError] = archdsl.ArchError) -> archdsl.ArchError:
    """Compiling the spec raises ``cls`` whose message holds every fragment (case-insensitive)."""
    with pytest.raises(cls) as info:
        compile_op(body, dims)
    text = str(info.value).lower()
    for fragment in fragments:
        assert fragment.lower() in text, f"{fragment!r} not in: {info.value}"
    return info.value

