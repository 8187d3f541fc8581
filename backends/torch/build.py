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
    module.archdsl_source = source
    module.archdsl_graph = graph
    if graph.mode == "eval":            # a deploy form: BatchNorm folded, dropout gone; eval semantics only
        module.eval()
    return module
