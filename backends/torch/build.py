"""Turn generated source into a live module, deterministically seeded."""

from __future__ import annotations

import hashlib
import linecache
import sys
import types

import torch

from archdsl.backends.torch.codegen import class_name, generate_source
from archdsl.ir.graph import Graph


def load_source(source: str, cls: str) -> type[torch.nn.Module]:
    """Import generated module source under a unique module name and return its class.

    The source is archdsl's own output (from codegen), never text from a spec file: running it is how
    a generated module comes to exist, as if it had been written to disk and imported.
    """
    digest = hashlib.sha1(source.encode()).hexdigest()[:16]
    name = f"archdsl_generated_{digest}"
    module = sys.modules.get(name)
    if module is None:
        filename = f"<archdsl-generated {digest}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        module = types.ModuleType(name)
        module.__file__ = filename
        code = compile(source, filename, "exec")
        exec(code, module.__dict__)  # noqa: S102 - our generated code (see docstring)
        sys.modules[name] = module
    return getattr(module, cls)


def build_module(graph: Graph, seed: int | None = 0, check_inputs: bool = False) -> torch.nn.Module:
    """An ``nn.Module`` for ``graph`` with PyTorch-default initialisation under ``seed``."""
    source = generate_source(graph, check_inputs=check_inputs)
    cls = load_source(source, class_name(graph))
    if seed is None:
        module = cls()
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = cls()
    return _finish(module, graph, source)


class StateMismatch(ValueError):
    """A state dict that does not fit the module built for a graph (``load_state_dict``'s complaint)."""


def build_loaded(graph: Graph, state: dict[str, torch.Tensor], check_inputs: bool = False) -> torch.nn.Module:
    """An ``nn.Module`` for ``graph`` holding the tensors of ``state`` (every parameter and persistent buffer,
    strict): built on the meta device and given ``state``'s tensors (``load_state_dict(assign=True)``), so no
    weight is initialised only to be overwritten. Tensors shared under several names stay one Parameter.

    Where construction leaves a tensor outside ``state`` (a non-persistent buffer computed in ``__init__``), or
    cannot run on the meta device, the module is built on the CPU and ``state`` copied in: the buffers are computed.
    A misfit raises :class:`StateMismatch`.
    """
    source = generate_source(graph, check_inputs=check_inputs)
    cls = load_source(source, class_name(graph))
    try:
        with torch.device("meta"):
            module = cls()
    except (RuntimeError, NotImplementedError):    # an __init__ computation the meta device cannot do
        module = None
    assign = module is not None and not any(t.is_meta for name, t in module.named_buffers() if name not in state)
    if module is None or not assign:
        module = cls()
    ties = _ties(module) if assign else []
    try:
        module.load_state_dict(state, strict=True, assign=assign)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise StateMismatch(str(exc)) from exc
    for first, others in ties:              # assign gave each name its own Parameter: share the first again
        for name in others:
            owner, _, leaf = name.rpartition(".")
            setattr(module.get_submodule(owner), leaf, module.get_parameter(first))
    return _finish(module, graph, source)


def _ties(module: torch.nn.Module) -> list[tuple[str, list[str]]]:
    """Parameters registered under several names: (first name, the other names)."""
    names: dict[int, list[str]] = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    return [(group[0], group[1:]) for group in names.values() if len(group) > 1]


def _finish(module: torch.nn.Module, graph: Graph, source: str) -> torch.nn.Module:
    # nn.Module's __setattr__ is typed for tensors and modules; these are plain attributes
    module.archdsl_source = source  # type: ignore[assignment]
    module.archdsl_graph = graph  # type: ignore[assignment]
    if graph.mode == "eval":            # a deploy form: BatchNorm folded, dropout gone; eval semantics only
        module.eval()
    return module
