"""The Python API: compile a spec to a Graph, build it to a module, save and load built models."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archdsl.errors import Diagnostic, ErrorCollector, UsageError

if TYPE_CHECKING:
    from archdsl.ir.graph import Graph

Source = str | os.PathLike


def compile(source: Source, model: str | None = None, **params: Any) -> Graph:  # noqa: A001
    """Parse, elaborate and verify one model of a spec (path or text); raises ArchError subclasses."""
    from archdsl.elaborate import elaborate_model, load  # here, so that importing the API stays cheap
    from archdsl.verify import verify

    resolved = _resolve(source)
    if resolved is not source and model is None:
        model = str(source)           # a zoo name names its model
    ns, loader = load(resolved)
    graph = elaborate_model(ns, loader, model, **params)
    verify(graph, loader.sources)
    return graph


def compile_all(source: Source, **params: Any) -> dict[str, Graph]:
    """Every model a spec defines, compiled (parameter overrides apply to each model that has them)."""
    from archdsl.elaborate import elaborate_model, load, model_names
    from archdsl.elaborate.loader import Loader
    from archdsl.verify import verify

    ns, loader = load(_resolve(source), Loader())
    declared = {p.name for name in model_names(ns) for p in ns.blocks[name].params}
    unknown = sorted(set(params) - declared)
    if unknown:
        raise UsageError(Diagnostic(f"no model in {ns.file} has the parameter(s) {', '.join(unknown)}",
                                    hint=f"parameters here: {', '.join(sorted(declared)) or 'none'}"))
    out = {}
    errors = ErrorCollector()
    for name in model_names(ns):
        block = ns.blocks[name]
        own = {k: v for k, v in params.items() if any(p.name == k for p in block.params)}
        with errors.guard():        # models are independent: one run reports the errors of each
            graph = elaborate_model(ns, loader, name, **own)
            verify(graph, loader.sources)
            out[name] = graph
    errors.raise_if_any()
    return out


def build(source: Source | Graph, model: str | None = None, seed: int | None = 0, check_inputs: bool = False,
          *, collapse_train: bool = False, **params: Any):
    """Compile (unless given a Graph) and build an ``nn.Module`` with PyTorch-default init under ``seed``.

    ``collapse_train``: linear regions run as one convolution computed from the expanded parameters at each
    step (SESR's training-time collapse; :mod:`archdsl.passes.collapse_train`); the parameters stay expanded.
    """
    from archdsl.backends.torch.build import build_module
    from archdsl.ir.graph import Graph

    if isinstance(source, Graph) and (model is not None or params):
        given = ", ".join([*(["model"] if model is not None else []), *params])
        raise UsageError(Diagnostic(f"build(graph, ...) cannot apply {given} to an already compiled Graph",
                                    hint="compile the spec with them: archdsl.build(spec, model, **params)"))
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not -(2**63) <= seed < 2**64):
        raise UsageError(Diagnostic(f"seed must be None or an int that fits in 64 bits, got {type(seed).__name__}",
                                    hint="pass an int from -2**63 to 2**64 - 1, such as seed=0, or leave it out"))
    graph = source if isinstance(source, Graph) else compile(source, model, **params)
    from archdsl.elaborate import builder

    total = builder.param_bytes(graph.params.values())     # a hand-made Graph was never counted by the elaborator
    if total > builder.MAX_PARAM_BYTES:
        raise builder.budget_error(total, graph.span)
    module = build_module(graph, seed=seed, check_inputs=check_inputs)
    if collapse_train:
        from archdsl.passes.collapse_train import collapse_train as collapsed

        return collapsed(module)
    return module


def _exists(text: str) -> bool:
    """Whether ``text`` names an existing file or folder ("" and unrepresentable names do not)."""
    try:
        return bool(text) and Path(text).exists()
    except (OSError, ValueError):      # a name too long for the file system, a NUL byte
        return False


def _resolve(source: Source) -> Source:
    """Zoo model names (``resnet50``) resolve to the shipped spec that defines them."""
    if not isinstance(source, (str, os.PathLike)):
        raise UsageError(Diagnostic(f"a spec is a path or spec text, got {type(source).__name__}",
                                    hint="pass a str (file name, zoo name or .arch text) or a pathlib.Path"))
    if isinstance(source, str) and "\n" not in source and not source.endswith((".arch", ".yaml", ".yml")) \
            and "{" not in source and not _exists(source):
        from archdsl.zoo import spec_path

        path = spec_path(source)
        if path is not None:
            return path
        if not source.strip() or not any(c in source for c in " \t{}()[]=#\"'"):
            # one bare word is never spec text: a missing file or a misspelt zoo name (did-you-mean UsageError)
            from archdsl.commands.common import spec_source

            spec_source(source.strip())
    return source
