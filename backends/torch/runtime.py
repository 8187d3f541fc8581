"""The small runtime generated modules import: containers, free-parameter init, input checks."""

from __future__ import annotations

import math
import re

import torch
from torch import nn


class Container(nn.Module):
    """A named-layer container; ``c[0]`` reaches the entry named "0" (torch.nn.Sequential style names)."""

    def __getitem__(self, index: int) -> nn.Module:
        return self._modules[str(index)]

    def __len__(self) -> int:
        return len(self._modules)


_INIT = re.compile(r"(\w+)(?:\((.*)\))?$")


def _kwargs(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        out[key.strip()] = float(value)
    return out


def new_tensor(shape: tuple[int, ...], init: str, dtype: str = "float32", parameter: bool = True) -> torch.Tensor:
    """A fresh tensor for a free parameter, initialised by its IR initialiser string.

    Supported: zeros, ones, normal(std=..., mean=...), trunc_normal(std=...), uniform(a=..., b=...),
    constant(value=...).
    """
    match = _INIT.match(init.strip())
    if match is None:
        raise ValueError(f"unknown initialiser {init!r}")
    kind, args = match.group(1), _kwargs(match.group(2) or "")
    t = torch.empty(shape, dtype=getattr(torch, dtype))
    with torch.no_grad():
        if kind == "zeros":
            t.zero_()
        elif kind == "ones":
            t.fill_(1.0)
        elif kind == "constant":
            t.fill_(args.get("value", 0.0))
        elif kind == "normal":
            t.normal_(args.get("mean", 0.0), args.get("std", 1.0))
        elif kind == "trunc_normal":
            std = args.get("std", 1.0)
            nn.init.trunc_normal_(t, args.get("mean", 0.0), std, -2 * std if "a" not in args else args["a"],
                                  2 * std if "b" not in args else args["b"])
        elif kind == "uniform":
            bound = args.get("bound", 1.0 / math.sqrt(shape[-1]) if shape else 1.0)
            t.uniform_(args.get("a", -bound), args.get("b", bound))
        else:
            raise ValueError(f"unknown initialiser {init!r}")
    return nn.Parameter(t) if parameter else t


class InputShapeError(ValueError):
    """A tensor passed to a generated module does not match the spec's declared input type."""


def check_inputs(spec: tuple, tensors: tuple) -> None:
    """Check ranks, static dims, dtypes and the consistency of symbolic dims across inputs."""
    from archdsl.ir.dims import SymDim, parse_dim

    env: dict[str, int] = {}
    for (name, dims, dtype, where), t in zip(spec, tensors, strict=True):
        want = "[" + ", ".join(dims) + "]"
        if not isinstance(t, torch.Tensor):
            raise InputShapeError(f"input '{name}' (declared at {where}) must be a tensor {want}, got {type(t).__name__}")
        if t.dim() != len(dims) or str(t.dtype).removeprefix("torch.") != dtype:
            raise InputShapeError(f"input '{name}' (declared at {where}) expects {dtype}{want}, "
                                  f"got {str(t.dtype).removeprefix('torch.')}{list(t.shape)}")
        for axis, (text, size) in enumerate(zip(dims, t.shape, strict=True)):
            d = parse_dim(text)
            if isinstance(d, int):
                ok = d == size
            elif len(d.symbols) == 1 and str(d) in d.symbols:
                ok = env.setdefault(str(d), int(size)) == size
            else:
                ok = not (d.symbols <= env.keys()) or SymDim.evaluate(d, env) == size
            if not ok:
                raise InputShapeError(f"input '{name}' (declared at {where}) expects {want}, got {list(t.shape)}: "
                                      f"axis {axis} should be {text}" +
                                      (f" = {env[text]}" if text in env else ""))


def reparameterize(module: nn.Module) -> nn.Module:
    """The deploy form of a module built by archdsl, with weights computed from its current ones (eval mode)."""
    from archdsl.errors import Diagnostic, UsageError
    from archdsl.simplify import simplify

    graph = getattr(module, "archdsl_graph", None)
    if graph is None:
        raise UsageError(Diagnostic("this module was not built by archdsl.build (it carries no graph)",
                                    hint="build it with archdsl.build(...) or load it with archdsl.load_built(...)"))
    return simplify(graph, weights=module).module()


def __getattr__(name: str):
    """``rt.functional`` (helpers for generated code) and ``rt.kernels`` (archdsl.kernels) load on first use."""
    if name in ("functional", "kernels"):
        import importlib

        return importlib.import_module("archdsl.kernels" if name == "kernels" else f"archdsl.backends.torch.{name}")
    raise AttributeError(name)
