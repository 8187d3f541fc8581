"""Elaboration: blocks, parameters, repeats, conditionals and imports -> a typed Graph."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from archdsl.elaborate import param_types
from archdsl.elaborate.apply import Applier
from archdsl.elaborate.blocks import Blocks
from archdsl.elaborate.builder import GraphBuilder
from archdsl.elaborate.dataflow import Poisoned
from archdsl.elaborate.expressions import Evaluator
from archdsl.elaborate.loader import Loader, Namespace
from archdsl.elaborate.scope import Scope
from archdsl.elaborate.session import Session
from archdsl.elaborate.shapes import Shapes
from archdsl.elaborate.values import BlockLayer, Tensor, describe
from archdsl.errors import Diagnostic, ElaborationError, LimitError, UsageError
from archdsl.gcpause import gc_paused
from archdsl.ir.graph import Graph
from archdsl.syntax import ast as A

__all__ = ["Elaborator", "load", "model_names", "elaborate_model"]


class Elaborator:
    """Expands one model of a loaded namespace into a Graph.

    Composed of parts that share one :class:`Session`: an expression :class:`Evaluator` (scalars through the
    pure table in ``scalars``, containers through ``Containers``), :class:`Shapes` (declared types against
    tensors), an :class:`Applier` (layers to nodes, with replay) and :class:`Blocks` (parameters and bodies).
    """

    def __init__(self, loader: Loader, name: str):
        self.session = Session(GraphBuilder(name, loader.sources), loader.sources)
        self.session.builder.shortcuts = self.session.shortcuts
        self.evaluator = Evaluator(self.session)
        self.shapes = Shapes(self.session, self.evaluator.evaluate)
        self.applier = Applier(self.session)
        self.blocks = Blocks(self.session, self.evaluator, self.applier, self.shapes)
        self.evaluator.applier = self.applier
        self.applier.blocks = self.blocks

    def model(self, block: A.BlockDef, ns: Namespace, params: dict[str, Any]) -> Graph:
        """Elaborate ``block`` as a model with symbolic input dims."""
        self.session.where, self.session.home = block.span, block.span.file
        try:
            return self._model(block, ns, params)
        except Poisoned:                        # statements failed independently: report every one of them
            self.session.errors.raise_if_any()
            raise
        except RecursionError:
            raise LimitError(Diagnostic(
                "the spec nests too deeply to elaborate (blocks within blocks and long expressions together)",
                self.session.where, "split long expressions into named values, or nest fewer blocks"),
                self.session.sources) from None
        finally:
            self._release()

    def _release(self) -> None:
        """Drop this elaboration's bookkeeping now: its parts refer to each other, so it would otherwise live on
        until a full garbage collection (the front end moves what it builds to the oldest generation)."""
        self.applier.expansions.clear()
        self.applier.ops.clear()
        self.applier.by_args.clear()
        self.applier.rules.clear()
        self.applier.old_rules.clear()
        self.applier.types.clear()
        builder = self.session.builder
        builder.nodes, builder.value_names, builder.suffixes, builder.owners = [], {}, {}, {}
        builder.doc_order, builder.plans = [], {}

    def _model(self, block: A.BlockDef, ns: Namespace, params: dict[str, Any]) -> Graph:
        builder = self.session.builder
        layer = BlockLayer(block, ns, (), tuple(params.items()), block.span)
        scope = Scope(ns)
        self.blocks.bind_params(layer, scope)
        inputs = []
        for stmt in block.body:
            if isinstance(stmt, A.InputStmt):
                if stmt.variadic:
                    raise self.session.error(f"a model's inputs are fixed; '*{stmt.name}' takes a varying number of "
                                             "tensors, so it is for blocks", stmt.span, f"declare each input: "
                                             f"`in {stmt.name}: [...]`")
                t = self.shapes.input_type(stmt.type, scope, stmt.where)
                inputs.append(Tensor(builder.add_input(stmt.name, t, stmt.span), t, stmt.span))
        outs = self.blocks.run_body(block, scope, inputs, block.span)
        names = [s.name for s in block.body if isinstance(s, A.OutputStmt)]
        default = ["out"] if len(names) == 1 else [f"out{i}" for i in range(len(names))]
        outputs = {}
        for name, fallback, tensor in zip(names, default, outs, strict=False):
            key = name or fallback
            if key in outputs:
                raise self.session.error(f"output name '{key}' is used twice", block.span,
                                         "name each output once: `out name = expr`")
            outputs[key] = tensor.value
        return builder.finish(outputs, block.doc or "", block.span)


def check_model_params(block: A.BlockDef, params: dict[str, Any]) -> None:
    """Overrides given on the command line or to ``compile`` must name the model's parameters."""
    declared = [p.name for p in block.params]
    for p in block.params:
        if p.default is None and p.name not in params:
            raise UsageError(Diagnostic(f"model {block.name} needs the parameter '{p.name}: {p.type}'", p.span,
                                        f"give it a value: --param {p.name}=VALUE (or {p.name}=... in the API)"))
    for key, value in params.items():
        if key not in declared:
            close = difflib.get_close_matches(key, declared, n=1)
            raise UsageError(Diagnostic(f"model {block.name} has no parameter '{key}'", hint=(
                f"did you mean '{close[0]}'?" if close else f"its parameters are: {', '.join(declared) or 'none'}")))
        decl = block.params[declared.index(key)]
        if not param_types.matches(decl.type, value):
            raise UsageError(Diagnostic(f"parameter '{key}' of model {block.name} is declared {decl.type}, but the "
                                        f"value given is {describe(value)} ({value!r})", decl.span,
                                        f"give a value of type {decl.type}: --param {key}=VALUE in .arch syntax"))


def load(source: str | os.PathLike, loader: Loader | None = None) -> tuple[Namespace, Loader]:
    """Load a spec from a path or from source text."""
    loader = loader or Loader()
    if isinstance(source, os.PathLike) or (isinstance(source, str) and "\n" not in source and
                                           "{" not in source and source.endswith((".arch", ".yaml", ".yml"))):
        path = str(source)
        try:
            found = Path(path).is_file()
        except (OSError, ValueError):      # a name too long for the file system, a NUL byte
            found = False
        if not found:
            shown = path if len(path) <= 80 else path[:77] + "..."
            raise UsageError(Diagnostic(f"no such spec file: {shown}", hint="check the path (relative to the current folder)"))
        return loader.load_file(path), loader
    return loader.load_text(str(source)), loader


def model_names(ns: Namespace) -> list[str]:
    """Names of the models defined in a namespace (not those imported)."""
    return [b.name for b in ns.blocks.values() if b.kind == "model"]


def elaborate_model(ns: Namespace, loader: Loader, model: str | None = None, **params: Any) -> Graph:
    """Elaborate one model (the only one when ``model`` is None)."""
    names = model_names(ns)
    if model is None:
        if not names:
            raise ElaborationError(Diagnostic(f"{ns.file} defines no model, so there is nothing to build", hint=(
                "a spec is built from a `model Name(...) { ... }`; a file of blocks is a library for other specs "
                "to import")), loader.sources)
        if len(names) != 1:
            raise UsageError(Diagnostic(f"{ns.file} defines {len(names)} models ({', '.join(names)}); choose one "
                                        "with -m NAME", hint="-m NAME on the command line; model=NAME in the Python API"))
        model = names[0]
    found = ns.find_block(model)
    if found is None or found[0].kind != "model":
        close = difflib.get_close_matches(model, names, n=1)
        raise UsageError(Diagnostic(f"no model named '{model}' in {ns.file}",
                                    hint=f"did you mean '{close[0]}'?" if close else
                                    f"models here: {', '.join(names) or 'none'}"))
    block, home = found
    check_model_params(block, params)
    with gc_paused():           # linear time on large graphs (see archdsl.gcpause)
        return Elaborator(loader, block.name).model(block, home, params)


