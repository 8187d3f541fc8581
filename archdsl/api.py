"""The Python API: compile a spec to a Graph, build it to a module, save and load built models."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from archdsl.errors import Diagnostic, ErrorCollector, UsageError

if TYPE_CHECKING:
    from archdsl.ir.graph import Graph

Source = str | os.PathLike


def compile(source: Source, model: str | None = None, **params: Any) -> Graph:  # noqa: A001
    """Parse, elaborate and verify one model of a spec (path or text); raises ArchError subclasses."""
    resolved = _resolve(source)
    if resolved is not source and model is None:
        model = str(source)           # a zoo name names its model
    return _compile(resolved, model, params)[0]


def _compile(source: Source, model: str | None, params: dict[str, Any]) -> tuple[Graph, dict[str, str]]:
    """The verified graph of ``model`` in ``source`` (already resolved) and the texts of the files it was read
    from (``{path: text}``, the spec and its imports)."""
    from archdsl.elaborate import elaborate_model, load  # here, so that importing the API stays cheap
    from archdsl.verify import verify

    ns, loader = load(source)
    graph = elaborate_model(ns, loader, model, **params)
    verify(graph, loader.sources)
    return graph, loader.sources


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
    _check_seed(seed)
    if isinstance(source, (str, os.PathLike)):      # a spec file: through the compile cache
        cached = _build_file(source, model, seed, check_inputs, params)
        if cached is not None:
            return _collapsed(cached) if collapse_train else cached

    from archdsl.ir.graph import Graph

    if isinstance(source, Graph) and (model is not None or params):
        given = ", ".join([*(["model"] if model is not None else []), *params])
        raise UsageError(Diagnostic(f"build(graph, ...) cannot apply {given} to an already compiled Graph",
                                    hint="compile the spec with them: archdsl.build(spec, model, **params)"))
    graph = source if isinstance(source, Graph) else compile(source, model, **params)
    module = _module_of(graph, seed, check_inputs)
    return _collapsed(module) if collapse_train else module


def _check_seed(seed: Any) -> None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not -(2**63) <= seed < 2**64):
        raise UsageError(Diagnostic(f"seed must be None or an int that fits in 64 bits, got {type(seed).__name__}",
                                    hint="pass an int from -2**63 to 2**64 - 1, such as seed=0, or leave it out"))


def build_zoo(name: str, path_of, seed: int | None, params: dict[str, Any]):
    """:func:`archdsl.zoo.build`: the zoo model ``name`` (``path_of``: name -> its spec file) through the compile
    cache, first under a key of the name and every zoo spec file's stamps (no zoo index to read on a hit), then
    as :func:`build` of its spec file (which stores the result under that key as well)."""
    from archdsl import compilecache, zoo

    _check_seed(seed)
    alias = None
    if compilecache.cache_dir() is not None and all(_plain(v) for v in params.values()):
        alias = compilecache.key_of("zoo-build", compilecache.torch_version(), name, zoo.spec_stamps(),
                                    repr(sorted(params.items())), _import_roots())
        module = _from_entry(compilecache.load(alias), seed, {})
        if module is not None:
            return module
    path = path_of(name)
    module = _build_file(path, name, seed, False, params, alias)
    return module if module is not None else build(path, name, seed=seed, **params)


def _module_of(graph: Graph, seed: int | None, check_inputs: bool):
    """The module of a verified ``graph``, after the parameter budget check (a hand-made Graph was never counted
    by the elaborator)."""
    from archdsl.backends.torch.build import build_module
    from archdsl.elaborate import builder

    total = builder.param_bytes(graph.params.values())
    if total > builder.MAX_PARAM_BYTES:
        raise builder.budget_error(total, graph.span)
    return build_module(graph, seed=seed, check_inputs=check_inputs)


def _collapsed(module):
    from archdsl.passes.collapse_train import collapse_train

    return collapse_train(module)


def _spec_file(source: Source) -> str | None:
    """The path of ``source`` when :func:`archdsl.elaborate.load` reads it as a spec file that exists."""
    if isinstance(source, str) and ("\n" in source or "{" in source or not source.endswith((".arch", ".yaml", ".yml"))):
        return None
    path = os.fspath(source)
    if not isinstance(path, str):
        return None
    try:
        return path if os.path.isfile(path) else None
    except (OSError, ValueError):
        return None


_SIMPLE = (bool, int, float, str, type(None))


def _plain(value: Any) -> bool:
    """Whether ``value`` is made of JSON-like scalars, lists and tuples (so its repr names it exactly)."""
    if isinstance(value, (list, tuple)):
        return len(value) <= 4096 and all(_plain(v) for v in value)
    return type(value) in _SIMPLE


def _build_file(source: Source, model: str | None, seed: int | None, check_inputs: bool,
                params: dict[str, Any], alias: str | None = None):
    """The module of a spec file through the compile cache (:mod:`archdsl.compilecache`): on a hit, the stored
    generated code is instantiated (its graph made from the stored JSON on first use of ``archdsl_graph``); on a
    miss, the spec is compiled and built as ever and the result stored. None when the cache does not apply (no
    cache, spec text, parameters of other types): the caller compiles as ever. ``alias``: another key a miss
    stores the result under (a zoo build's)."""
    from archdsl import compilecache

    if compilecache.cache_dir() is None or not (model is None or isinstance(model, str)) \
            or not all(_plain(v) for v in params.values()):
        return None
    resolved = _resolve(source)
    path = _spec_file(resolved)
    if path is None:
        return None
    if resolved is not source and model is None:
        model = str(source)           # a zoo name names its model
    text = compilecache.file_digest(path)
    if text is None:
        return None
    roots = _import_roots()
    real = os.path.realpath(path)
    key = compilecache.key_of("build", compilecache.torch_version(), path, real, text, model,
                              repr(sorted(params.items())), bool(check_inputs), roots)
    module = _from_entry(compilecache.load(key), seed, {real: text})
    if module is not None:
        return module
    return _build_and_store([key] if alias is None else [key, alias], path, model, seed, check_inputs, params)


def _from_entry(entry: Any, seed: int | None, known: dict[str, str]):
    """The module of a cache entry whose files are all unchanged (``known``: see :func:`_fresh`), else None."""
    if entry is None or not _fresh(entry.meta.get("deps"), known):
        return None
    from archdsl.backends.torch.build import GraphThunk, instantiate, load_source

    try:
        cls = load_source(entry.source, str(entry.meta["class"]), entry.code)
        thunk = GraphThunk(entry.packed)
        return instantiate(cls, seed, thunk, entry.source, mode=str(entry.meta["mode"]))
    except (KeyError, AttributeError, TypeError):   # an entry of another layout: rebuilt
        return None


IMPORT_PATH_ENV = "ARCHDSL_IMPORT_PATH"      # archdsl.elaborate.loader.IMPORT_PATH_ENV (a test holds them equal)


def _import_roots() -> list[str]:
    """The extra folders imports may reach (``$ARCHDSL_IMPORT_PATH``, ``archdsl -I``): part of a cache key, read
    without importing the elaborator (a cache hit never needs it; ``-I`` is set only once it is imported)."""
    loader = sys.modules.get("archdsl.elaborate.loader")
    return [os.environ.get(IMPORT_PATH_ENV, ""), *(loader.import_path.get() if loader is not None else ())]


def _fresh(deps: Any, known: dict[str, str]) -> bool:
    """Whether every file an entry was compiled from still has the text it had ([[path, SHA-256], ...]);
    ``known``: digests just taken ({real path: SHA-256}: the spec file itself, not read twice)."""
    from archdsl.compilecache import file_digest

    if not isinstance(deps, list):
        return False
    return all(isinstance(d, list) and len(d) == 2 and isinstance(d[0], str)
               and (known[d[0]] if d[0] in known else file_digest(d[0])) == d[1] for d in deps)


def _build_and_store(keys: list[str], path: str, model: str | None, seed: int | None, check_inputs: bool,
                     params: dict[str, Any]):
    """Compile and build the spec file ``path`` as :func:`build` does, then store the result under ``keys``."""
    from archdsl import compilecache
    from archdsl.backends.torch.build import compile_source
    from archdsl.errors import collect_warnings, warn

    try:
        with collect_warnings() as warned:
            graph, sources = _compile(path, model, params)
    finally:
        for w in warned:        # as uncached: through the caller's collector or the warnings module
            warn(w.diagnostic, w.sources, w.model)
    module = _module_of(graph, seed, check_inputs)
    source = cast(str, module.archdsl_source)
    deps = [[os.path.realpath(file), compilecache.text_digest(text)] for file, text in sources.items()]
    if warned:                  # a spec that warns is compiled every time (a hit would not warn)
        return module
    filename, code = compile_source(source)
    from archdsl.backends.torch.codegen import class_name

    meta = {"class": class_name(graph), "mode": graph.mode, "deps": deps}
    packed = compilecache.Entry(keys[0], meta, source, filename, code, graph.to_json()).packed
    for key in keys:
        compilecache.store(compilecache.Entry(key, meta, source, filename, code, packed=packed))
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
