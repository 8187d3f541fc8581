"""Weights for the ONNX initialisers: the seeded PyTorch init, a safetensors file (or a built folder), or a
state_dict; names, shapes and dtypes are checked against the graph's parameter declarations."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx_ir as ir

from archdsl.errors import Diagnostic, UsageError
from archdsl.ir.graph import Graph
from archdsl.ir.ties import tied_names

Weights = str | os.PathLike | Mapping[str, Any] | None
_ALIASES_KEY = "archdsl.aliases"     # safetensors metadata written by archdsl.save_built for tied tensors
_SHOWN = 4                          # names listed in a mismatch message


def _tensor(name: str, value: Any) -> ir.TensorProtocol:
    """An onnx_ir tensor over a torch tensor or array (no copy for contiguous CPU tensors)."""
    import torch

    if isinstance(value, torch.Tensor):
        return ir.tensor_adapters.TorchTensor(value.detach().cpu().contiguous(), name=name)
    return ir.Tensor(np.ascontiguousarray(np.asarray(value)), name=name)


def seeded(graph: Graph, seed: int = 0) -> dict[str, Any]:
    """The state_dict ``archdsl build --seed`` gives (PyTorch-default init), so both backends hold one model."""
    from archdsl.backends.torch.build import build_module

    return dict(build_module(graph, seed=seed).state_dict())


def read_safetensors(path: str | os.PathLike) -> dict[str, Any]:
    """Tensors of a safetensors file (or of ``weights.safetensors`` in a built folder), tied names restored."""
    from safetensors import SafetensorError, safe_open

    file = Path(path)
    if file.is_dir():
        file = file / "weights.safetensors"
    if not file.is_file():
        raise UsageError(Diagnostic(f"weights file {file} does not exist",
                                    hint="give a .safetensors file or a folder written by `archdsl build`"))
    try:
        with safe_open(str(file), framework="pt") as f:
            state = {name: f.get_tensor(name) for name in f.keys()}
            aliases = json.loads((f.metadata() or {}).get(_ALIASES_KEY, "{}"))
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as exc:
        raise UsageError(Diagnostic(f"{file} is not a readable safetensors file: {exc}",
                                    hint="give the model.safetensors that `archdsl build` wrote (or "
                                         "safetensors.torch.save_file made)")) from None
    for name, target in aliases.items():
        if target in state:
            state[name] = state[target]
    return state


def resolve(graph: Graph, weights: Weights, seed: int = 0) -> dict[str, ir.TensorProtocol]:
    """Checked onnx_ir tensors for every parameter the graph's nodes use."""
    where = "the seeded init"
    if weights is None:
        state: Mapping[str, Any] = seeded(graph, seed)
    elif isinstance(weights, (str, os.PathLike)):
        state, where = read_safetensors(weights), str(weights)
    elif isinstance(weights, Mapping):
        state, where = weights, "the state_dict"
    else:
        raise UsageError(Diagnostic(f"weights must be a safetensors path or a state_dict, got {type(weights).__name__}",
                                    hint="pass a path to a .safetensors file, module.state_dict(), or None for the "
                                         "seeded initialisation"))
    used = {key for node in graph.nodes for key in node.params.values()}
    _check(graph, state, used, where)
    return {key: _tensor(key, state[key]) for key in sorted(used)}


def _check(graph: Graph, state: Mapping[str, Any], used: set[str], where: str) -> None:
    """UsageError naming missing, unexpected and mis-shaped tensors of ``state``."""
    problems = []
    missing = sorted(used - state.keys())
    if missing:
        problems.append(f"missing {len(missing)} tensor(s): {', '.join(missing[:_SHOWN])}")
    unexpected = sorted(state.keys() - graph.params.keys() - tied_names(graph).keys())   # tied: the same tensor
    if unexpected:
        problems.append(f"{len(unexpected)} tensor(s) the model does not have: {', '.join(unexpected[:_SHOWN])}")
    for key in sorted(used & state.keys()):
        p, value = graph.params[key], state[key]
        shape = tuple(int(s) for s in getattr(value, "shape", ()))
        dtype = str(getattr(value, "dtype", "")).removeprefix("torch.")
        if shape != tuple(int(d) for d in p.shape) or dtype != p.dtype:
            problems.append(f"{key} is {dtype}{list(shape)}, the model declares {p.dtype}{list(p.shape)}")
        if len(problems) > _SHOWN:
            break
    if problems:
        raise UsageError(Diagnostic(f"the weights in {where} do not fit model {graph.name}: " + "; ".join(problems),
                                    graph.span, hint="export the weights from the same spec and parameters"))
