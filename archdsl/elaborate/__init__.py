"""Elaboration: blocks, parameters, repeats, conditionals and imports -> a typed Graph."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from archdsl.elaborate.apply import ApplyMixin, Ctx
from archdsl.elaborate.builder import GraphBuilder
from archdsl.elaborate.expressions import Scope
from archdsl.elaborate.loader import Loader, Namespace
from archdsl.elaborate.values import BlockLayer, Tensor
from archdsl.errors import Diagnostic, UsageError
from archdsl.ir.graph import Graph
from archdsl.syntax import ast as A

__all__ = ["Elaborator", "load", "model_names", "elaborate_model"]


class Elaborator(ApplyMixin):
    """Expands one model of a loaded namespace into a Graph."""

    def __init__(self, loader: Loader, name: str):
        self.loader = loader
        self.sources = loader.sources
        self.builder = GraphBuilder(name, loader.sources)
        self.ctx = Ctx()

    def model(self, block: A.BlockDef, ns: Namespace, params: dict[str, Any]) -> Graph:
        """Elaborate ``block`` as a model with symbolic input dims."""
        layer = BlockLayer(block, ns, (), tuple(params.items()), block.span)
        scope = Scope(ns)
        self.bind_params(layer, scope)
        inputs = []
        for stmt in block.body:
            if isinstance(stmt, A.InputStmt):
                t = self.eval_type(stmt.type, scope, symbolic=True)
                inputs.append(Tensor(self.builder.add_input(stmt.name, t, stmt.span), t, stmt.span))
        outs = self.run_body(block, scope, inputs, block.span)
        names = [s.name for s in block.body if isinstance(s, A.OutputStmt)]
        default = ["out"] if len(names) == 1 else [f"out{i}" for i in range(len(names))]
        outputs = {}
        for name, fallback, tensor in zip(names, default, outs):
            key = name or fallback
            if key in outputs:
                raise self.error(f"output name '{key}' is used twice", block.span)
            outputs[key] = tensor.value
        return self.builder.finish(outputs, block.doc or "", block.span)


def load(source: str | os.PathLike, loader: Loader | None = None) -> tuple[Namespace, Loader]:
    """Load a spec from a path or from source text."""
    loader = loader or Loader()
    if isinstance(source, os.PathLike) or (isinstance(source, str) and "\n" not in source and
                                           "{" not in source and source.endswith((".arch", ".yaml", ".yml"))):
        path = str(source)
        if not Path(path).is_file():
            raise UsageError(Diagnostic(f"no such spec file: {path}"))
        return loader.load_file(path), loader
    return loader.load_text(str(source)), loader


def model_names(ns: Namespace) -> list[str]:
    """Names of the models defined in a namespace (not those imported)."""
    return [b.name for b in ns.blocks.values() if b.kind == "model"]


def elaborate_model(ns: Namespace, loader: Loader, model: str | None = None, **params: Any) -> Graph:
    """Elaborate one model (the only one when ``model`` is None)."""
    names = model_names(ns)
    if model is None:
        if len(names) != 1:
            listing = ", ".join(names) if names else "none"
            raise UsageError(Diagnostic(f"{ns.file} defines {len(names)} models ({listing}); choose one with -m NAME"))
        model = names[0]
    found = ns.find_block(model)
    if found is None or found[0].kind != "model":
        import difflib

        close = difflib.get_close_matches(model, names, n=1)
        raise UsageError(Diagnostic(f"no model named '{model}' in {ns.file}",
                                    hint=f"did you mean '{close[0]}'?" if close else
                                    f"models here: {', '.join(names) or 'none'}"))
    block, home = found
    return Elaborator(loader, block.name).model(block, home, params)
