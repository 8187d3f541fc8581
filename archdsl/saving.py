"""Save a built model as plain files (model.py, weights.safetensors, graph.json) and load it back without pickle."""

from __future__ import annotations

import hashlib
import json
import os
import types
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from archdsl.errors import ArchError, Diagnostic, UsageError
from archdsl.gcpause import gc_paused
from archdsl.output import Content, write_output_dir

if TYPE_CHECKING:   # torch is imported only when a model is saved or loaded (keeps `import archdsl` light)
    import torch

    from archdsl.backends.torch.build import GraphThunk
    from archdsl.ir.graph import Graph

MODEL_FILE = "model.py"
WEIGHTS_FILE = "weights.safetensors"
GRAPH_FILE = "graph.json"
FILES = (MODEL_FILE, WEIGHTS_FILE, GRAPH_FILE)
_ALIASES_KEY = "archdsl.aliases"   # safetensors metadata: {"tied.name": "first.name"} for shared tensors
_COLLAPSE_TRAIN_KEY = "archdsl.collapse_train"   # "true": load_built wraps the module in collapse_train


def save_built(graph: Graph, module: torch.nn.Module, outdir: str | os.PathLike, force: bool = False,
               source: str | None = None, code: str | None = None) -> dict[str, Path]:
    """Write model.py, weights.safetensors and graph.json into ``outdir`` atomically; return the paths.

    Written with :func:`archdsl.output.write_output_dir`: readers never see a half-written model, two
    concurrent saves to one folder never both succeed, and an existing ``outdir`` is replaced (atomically)
    only with ``force=True`` and only when it holds nothing but files this function writes. ``code``: the
    source :func:`~archdsl.backends.torch.build.build_module` generated for ``module`` from ``graph`` with the
    label ``source`` (written as model.py instead of generating it again).
    """
    from archdsl.backends.torch.codegen import generate_source

    inner = getattr(module, "collapse_train_inner", None)     # archdsl.build(..., collapse_train=True)
    if code is None:
        code = generate_source(graph, check_inputs=hasattr(inner or module, "_input_spec"),
                               source=source or (graph.span.file if graph.span else "a spec"))
    state = module.state_dict()
    flags = {_COLLAPSE_TRAIN_KEY: "true"} if inner is not None else {}
    files: dict[str, Content] = {MODEL_FILE: code, GRAPH_FILE: graph.to_json(), WEIGHTS_FILE: weights_content(state, flags)}
    return write_output_dir(outdir, files, force=force)


def weights_content(state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Callable[[Path], None]:
    """Content for :func:`archdsl.output.write_output_dir`: ``state`` as a safetensors file (shared tensors once)."""
    return lambda path: _save_weights(state, path, metadata)


MAX_GRAPH_BYTES = 256 * 2**20    # a graph.json larger than this is refused before it is read
# The output folder was damaged or mixed with another build: the one fix for each of its read errors.
REBUILD_HINT = "the build folder is damaged or mixed from two builds: rebuild it with `archdsl build FILE -o OUTDIR`"


def load_built(outdir: str | os.PathLike, check_inputs: bool = False) -> torch.nn.Module:
    """Rebuild the module saved in ``outdir`` from graph.json and load its weights (strict, no pickle).

    model.py is never imported: the module is regenerated from the graph, which is verified first. Both
    files are untrusted input: every declared parameter is checked against the weights file's header (name,
    shape, dtype, size) before anything is allocated, and every problem is a UsageError naming the file.

    A graph.json whose bytes (SHA-256) match one this archdsl has verified and built before reuses what was made
    from them (a pure function of those bytes): within the process its Graph and generated source, across
    processes the source, code object and declarations kept in the compile cache (:mod:`archdsl.compilecache`;
    the Graph itself is then read from these bytes on first use of ``archdsl_graph``). Loading further checkpoints
    of one model skips parsing, verifying and generating again; any other bytes are read as untrusted.
    """
    folder = Path(outdir)
    missing = [name for name in (GRAPH_FILE, WEIGHTS_FILE) if not (folder / name).is_file()]
    if missing:
        raise UsageError(Diagnostic(f"{folder} is not a built model: missing {', '.join(missing)}",
                                    hint="create one with `archdsl build FILE -o OUTDIR`"))
    raw = _read_bytes(folder / GRAPH_FILE)
    digest = hashlib.sha256(raw).digest()
    key = (digest, check_inputs)
    with gc_paused():           # many small objects, none garbage until the load ends
        known = _LOADED.get(key) or _cached(digest, check_inputs, raw)
        if known is None:
            graph = _read_graph(folder / GRAPH_FILE, raw)
            known = _Known(graph, declarations(graph))
        state, metadata = _read_weights(known.decls, folder / WEIGHTS_FILE)
        module = _build(folder, known, state, check_inputs)
    if known.stored is None:
        _store(digest, check_inputs, known)
    if len(raw) <= _MEMO_MAX_BYTES:
        _LOADED.pop(key, None)
        _LOADED[key] = known
        while len(_LOADED) > _MEMO_ENTRIES:
            del _LOADED[next(iter(_LOADED))]
    if metadata.get(_COLLAPSE_TRAIN_KEY) == "true":   # built with --collapse-train
        from archdsl.passes.collapse_train import collapse_train

        return collapse_train(module)
    return module


class Declarations:
    """What loading weights checks against a graph: its name, its parameters' (name, dtype, shape) and the tied
    names (``ties.tied_names``)."""

    __slots__ = ("name", "params", "tied")

    def __init__(self, name: str, params: list[tuple[str, str, tuple[int, ...]]], tied: list[str]) -> None:
        self.name, self.params, self.tied = name, params, tied

    def to_json(self) -> dict:
        return {"name": self.name, "params": [[n, d, list(s)] for n, d, s in self.params], "tied": self.tied}

    @classmethod
    def from_json(cls, data: object) -> Declarations | None:
        """Declarations from :meth:`to_json`'s form; None when ``data`` is not of that form."""
        if not isinstance(data, dict):
            return None
        name, params, tied = data.get("name"), data.get("params"), data.get("tied")
        if not (isinstance(name, str) and isinstance(params, list) and isinstance(tied, list)
                and all(isinstance(t, str) for t in tied)):
            return None
        out = []
        for p in params:
            if not (isinstance(p, list) and len(p) == 3 and isinstance(p[0], str) and isinstance(p[1], str)
                    and isinstance(p[2], list) and all(type(d) is int for d in p[2])):
                return None
            out.append((p[0], p[1], tuple(p[2])))
        return cls(name, out, tied)


def declarations(graph: Graph) -> Declarations:
    """The :class:`Declarations` of ``graph``."""
    from archdsl.ir.ties import tied_names

    params = [(p.name, p.dtype, tuple(p.shape)) for p in graph.params.values()]
    return Declarations(graph.name, params, sorted(tied_names(graph)))


class _Known:
    """What a load makes from graph.json's bytes: the Graph (or a thunk that reads it), the declarations, and once
    built the generated source, class name, mode and code object. ``stored``: whether it is in the compile cache
    (None: not yet tried)."""

    __slots__ = ("cls", "code", "decls", "graph", "mode", "source", "stored")

    def __init__(self, graph: Graph | GraphThunk, decls: Declarations, source: str | None = None,
                 cls: str | None = None, mode: str | None = None, code: types.CodeType | None = None,
                 stored: bool | None = None) -> None:
        self.graph, self.decls, self.source, self.cls, self.mode, self.code = graph, decls, source, cls, mode, code
        self.stored = stored


def _cache_key(digest: bytes, check_inputs: bool) -> str:
    from archdsl import compilecache

    return compilecache.key_of("load_built", compilecache.torch_version(), digest.hex(), bool(check_inputs))


def _cached(digest: bytes, check_inputs: bool, raw: bytes) -> _Known | None:
    """What the compile cache holds for these graph.json bytes (verified and built by this archdsl before)."""
    from archdsl import compilecache

    if compilecache.cache_dir() is None:
        return None
    entry = compilecache.load(_cache_key(digest, check_inputs))
    if entry is None:
        return None
    meta = entry.meta
    decls = Declarations.from_json(meta.get("decls"))
    if decls is None or not isinstance(meta.get("class"), str) or not isinstance(meta.get("mode"), str):
        return None
    from archdsl.backends.torch.build import GraphThunk

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return _Known(GraphThunk(text), decls, entry.source, meta["class"], meta["mode"], entry.code, stored=True)


def _store(digest: bytes, check_inputs: bool, known: _Known) -> None:
    """Keep what this load made from verified graph.json bytes in the compile cache."""
    from archdsl import compilecache

    known.stored = False
    if compilecache.cache_dir() is None or known.source is None or known.cls is None or known.mode is None:
        return
    from archdsl.backends.torch.build import compile_source

    filename, code = compile_source(known.source)
    meta = {"class": known.cls, "mode": known.mode, "decls": known.decls.to_json()}
    known.stored = compilecache.store(compilecache.Entry(_cache_key(digest, check_inputs), meta, known.source,
                                                         filename, code))


def _build(folder: Path, known: _Known, state: dict[str, torch.Tensor], check_inputs: bool) -> torch.nn.Module:
    """The module of a verified graph holding ``state`` (``known`` gains its generated source when it had none)."""
    from archdsl.backends.torch.build import GraphThunk, StateMismatch, load_into, load_source

    try:       # built on the meta device and given the loaded tensors: no initialisation to overwrite
        if known.source is None:
            from archdsl.backends.torch.codegen import class_name, generate_source

            graph = known.graph() if isinstance(known.graph, GraphThunk) else known.graph
            known.source = generate_source(graph, check_inputs=check_inputs)
            known.cls, known.mode = class_name(graph), graph.mode
        assert known.cls is not None
        cls = load_source(known.source, known.cls, known.code)
        return load_into(cls, state, known.graph, known.source, mode=known.mode)
    except ArchError:
        raise
    except StateMismatch as exc:       # load_state_dict: a misfit the header check let through
        raise UsageError(Diagnostic(f"{folder / WEIGHTS_FILE} does not fit {folder / GRAPH_FILE}: {exc}",
                                    hint=REBUILD_HINT)) from exc
    except Exception as exc:   # graph.json is untrusted: whatever it does to the code generator is its fault
        raise UsageError(Diagnostic(f"{folder / GRAPH_FILE} cannot be built: {type(exc).__name__}: {exc}"[:500],
                                    hint=REBUILD_HINT)) from None


# What load_built made from graph.json bytes it verified: {(SHA-256 of graph.json, check_inputs): _Known}, the most
# recently used last. Graphs and sources are immutable; large graphs are not kept.
_LOADED: dict[tuple[bytes, bool], _Known] = {}
_MEMO_ENTRIES = 8
_MEMO_MAX_BYTES = 8 * 2**20


def _read_bytes(path: Path) -> bytes:
    """The bytes of graph.json (refused when larger than MAX_GRAPH_BYTES); a UsageError naming the file."""
    try:
        if path.stat().st_size > MAX_GRAPH_BYTES:
            raise UsageError(Diagnostic(f"{path} is larger than {MAX_GRAPH_BYTES // 2**20} MiB",
                                        hint=REBUILD_HINT))
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(Diagnostic(f"cannot read {path}: {exc}",
                                    hint="check that the file exists and is readable UTF-8 text")) from None


def _read_graph(path: Path, raw: bytes | None = None) -> Graph:
    """graph.json (its bytes ``raw`` when already read), parsed and verified; any failure is a UsageError
    naming the file."""
    from archdsl.ir.graph import Graph
    from archdsl.verify import verify

    try:
        text = (_read_bytes(path) if raw is None else raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(Diagnostic(f"cannot read {path}: {exc}",
                                    hint="check that the file exists and is readable UTF-8 text")) from None
    try:
        graph = Graph.from_json(text)
        verify(graph)
        for p in graph.params.values():
            if not all(isinstance(d, int) for d in p.shape):
                raise ValueError(f"parameter '{p.name}' has a symbolic shape {list(map(str, p.shape))}")
    except ArchError as exc:
        raise UsageError(Diagnostic(f"{path} is not a valid archdsl graph: {exc.diagnostics[0].message}",
                                    hint=REBUILD_HINT)) from None
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError, IndexError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__   # pydantic's ValidationError is a ValueError
        raise UsageError(Diagnostic(f"{path} is not a valid archdsl graph: {message[:300]}",
                                    hint=REBUILD_HINT)) from None
    return graph


def load_weights(graph: Graph, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A safetensors weights file for ``graph``, checked against its declarations before anything is loaded."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(Diagnostic(f"no such weights file: {path}", hint="give a .safetensors file"))
    return _read_weights(declarations(graph), path, f"model {graph.name}")[0]


def _read_weights(decls: Declarations, path: Path, against: str | None = None) -> tuple[dict[str, torch.Tensor],
                                                                                  dict[str, str]]:
    """The state dict in a safetensors file (aliases restored) and the file's metadata, read in one opening of
    the file; its header is checked against the graph's declarations before any tensor is read."""
    from safetensors import SafetensorError, safe_open

    try:
        f = safe_open(str(path), framework="pt")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise UsageError(Diagnostic(f"{path} is not a valid safetensors file: {exc}", hint=_SAFETENSORS_HINT)) from None
    with f:
        try:
            names = list(f.keys())
            slices = [f.get_slice(name) for name in names]
            header = {name: (str(s.get_dtype()), tuple(s.get_shape())) for name, s in zip(names, slices, strict=True)}
            metadata = f.metadata() or {}
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise UsageError(Diagnostic(f"{path} is not a valid safetensors file: {exc}",
                                        hint=_SAFETENSORS_HINT)) from None
        aliases = _check_weights(decls, path, header, metadata, against)
        try:
            state = f.get_tensors() if hasattr(f, "get_tensors") else {name: f.get_tensor(name) for name in names}
        except (SafetensorError, RuntimeError, OSError, ValueError, KeyError) as exc:
            raise UsageError(Diagnostic(f"{path} cannot be read: {exc}", hint=REBUILD_HINT)) from exc
    for name, target in aliases.items():
        state[name] = state[target]
    return state, metadata


_SAFETENSORS_HINT = "give the model.safetensors that `archdsl build` wrote (or safetensors.torch.save_file made)"


def _check_weights(decls: Declarations, path: Path, header: dict[str, tuple[str, tuple[int, ...]]],
                   metadata: dict[str, str], against: str | None = None) -> dict[str, str]:
    """The file's aliases ({tied name: stored name}), once its header ({name: (dtype, shape)}) is checked against
    the graph's declarations: every declared parameter present with its dtype and shape, nothing else."""
    aliases = _aliases(metadata, header, path)
    problems = []
    declared = set()
    for name, dtype_declared, shape_declared in decls.params:
        declared.add(name)
        stored = name if name in header else aliases.get(name)
        if stored is None:
            problems.append(f"'{name}' is missing")
            continue
        dtype, shape = header[stored]
        want = _SAFETENSORS_DTYPES.get(dtype_declared, dtype_declared)
        if shape != shape_declared or dtype != want:
            problems.append(f"'{name}' is {dtype}{list(shape)}, the graph declares {want}{list(shape_declared)}")
    unknown = set(header) - declared
    extra = sorted(unknown - set(decls.tied)) if unknown else []     # tied names: only when there are others
    if extra:
        problems.append(f"unexpected tensors {', '.join(extra[:3])}")
    if problems:
        raise UsageError(Diagnostic(f"{path} does not fit {against or path.parent / GRAPH_FILE}: "
                                    f"{'; '.join(problems[:3])}"
                                    + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""),
                                    hint="the weights were saved for another model or version of the spec: "
                                         "give the matching file, or rebuild with `archdsl build FILE -o OUTDIR`"))
    return aliases


_SAFETENSORS_DTYPES = {"float32": "F32", "float64": "F64", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
                       "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


def _aliases(metadata: dict, header: dict, path: Path) -> dict[str, str]:
    """The alias map from the weights' metadata: {tied name: stored name}, validated."""
    text = metadata.get(_ALIASES_KEY)
    if text is None:
        return {}
    try:
        aliases = json.loads(text)
    except (ValueError, RecursionError):
        aliases = None
    if not isinstance(aliases, dict) or not all(isinstance(k, str) and isinstance(v, str) and v in header
                                                for k, v in aliases.items()):
        raise UsageError(Diagnostic(f"{path} has malformed '{_ALIASES_KEY}' metadata",
                                    hint="expected a JSON object mapping tied names to stored tensor names"))
    return aliases


def _save_weights(state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """safetensors file of ``state``; a tensor shared under several names is stored once (aliases in metadata)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    storages: set[int] = set()
    for name, t in state.items():
        t = t.detach()
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype, t.device)
        if key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        ptr = t.untyped_storage().data_ptr()
        shared = ptr in storages and t.numel() > 0
        storages.add(ptr)
        tensors[name] = t.to("cpu", copy=shared or t.device.type != "cpu").contiguous()
    extra = {**(metadata or {}), **({_ALIASES_KEY: json.dumps(aliases)} if aliases else {})}
    save_file(tensors, str(path), metadata=extra or None)
