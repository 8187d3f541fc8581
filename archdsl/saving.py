"""Save a built model as plain files (model.py, weights.safetensors, graph.json) and load it back without pickle."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from archdsl.errors import ArchError, Diagnostic, UsageError
from archdsl.gcpause import gc_paused
from archdsl.ir.graph import Graph
from archdsl.output import Content, write_output_dir

if TYPE_CHECKING:   # torch is imported only when a model is saved or loaded (keeps `import archdsl` light)
    import torch

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

    Within one process, a graph.json whose bytes (SHA-256) match one this function has already verified and
    built reuses that Graph and generated source (a pure function of those bytes): loading further checkpoints
    of one model skips parsing, verifying and generating again. Any other bytes are read as untrusted.
    """
    folder = Path(outdir)
    missing = [name for name in (GRAPH_FILE, WEIGHTS_FILE) if not (folder / name).is_file()]
    if missing:
        raise UsageError(Diagnostic(f"{folder} is not a built model: missing {', '.join(missing)}",
                                    hint="create one with `archdsl build FILE -o OUTDIR`"))
    raw = _read_bytes(folder / GRAPH_FILE)
    key = (hashlib.sha256(raw).digest(), check_inputs)
    with gc_paused():           # many small objects, none garbage until the load ends
        graph, source = _LOADED.get(key) or (_read_graph(folder / GRAPH_FILE, raw), None)
        state, metadata = _read_weights(graph, folder / WEIGHTS_FILE)
        module, source = _build(folder, graph, state, check_inputs, source)
    if len(raw) <= _MEMO_MAX_BYTES:
        _LOADED.pop(key, None)
        _LOADED[key] = (graph, source)
        while len(_LOADED) > _MEMO_ENTRIES:
            del _LOADED[next(iter(_LOADED))]
    if metadata.get(_COLLAPSE_TRAIN_KEY) == "true":   # built with --collapse-train
        from archdsl.passes.collapse_train import collapse_train

        return collapse_train(module)
    return module


def _build(folder: Path, graph: Graph, state: dict[str, torch.Tensor], check_inputs: bool,
           source: str | None) -> tuple[torch.nn.Module, str]:
    """The module of a verified graph holding ``state``, and its generated source (``source``, when known)."""
    from archdsl.backends.torch.build import StateMismatch, build_loaded
    from archdsl.backends.torch.codegen import generate_source

    try:       # built on the meta device and given the loaded tensors: no initialisation to overwrite
        if source is None:
            source = generate_source(graph, check_inputs=check_inputs)
        return build_loaded(graph, state, check_inputs=check_inputs, source=source), source
    except ArchError:
        raise
    except StateMismatch as exc:       # load_state_dict: a misfit the header check let through
        raise UsageError(Diagnostic(f"{folder / WEIGHTS_FILE} does not fit {folder / GRAPH_FILE}: {exc}",
                                    hint=REBUILD_HINT)) from exc
    except Exception as exc:   # graph.json is untrusted: whatever it does to the code generator is its fault
        raise UsageError(Diagnostic(f"{folder / GRAPH_FILE} cannot be built: {type(exc).__name__}: {exc}"[:500],
                                    hint=REBUILD_HINT)) from None


# Graphs load_built verified and built, with their generated source: {(SHA-256 of graph.json, check_inputs):
# (Graph, source)}, the most recently used last. Graphs and sources are immutable; large graphs are not kept.
_LOADED: dict[tuple[bytes, bool], tuple[Graph, str]] = {}
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
    return _read_weights(graph, path, f"model {graph.name}")[0]


def _read_weights(graph: Graph, path: Path, against: str | None = None) -> tuple[dict[str, torch.Tensor],
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
        aliases = _check_weights(graph, path, header, metadata, against)
        try:
            state = f.get_tensors() if hasattr(f, "get_tensors") else {name: f.get_tensor(name) for name in names}
        except (SafetensorError, RuntimeError, OSError, ValueError, KeyError) as exc:
            raise UsageError(Diagnostic(f"{path} cannot be read: {exc}", hint=REBUILD_HINT)) from exc
    for name, target in aliases.items():
        state[name] = state[target]
    return state, metadata


_SAFETENSORS_HINT = "give the model.safetensors that `archdsl build` wrote (or safetensors.torch.save_file made)"


def _check_weights(graph: Graph, path: Path, header: dict[str, tuple[str, tuple[int, ...]]], metadata: dict[str, str],
                   against: str | None = None) -> dict[str, str]:
    """The file's aliases ({tied name: stored name}), once its header ({name: (dtype, shape)}) is checked against
    the graph: every declared parameter present with its dtype and shape, nothing else."""
    from archdsl.ir.ties import tied_names

    aliases = _aliases(metadata, header, path)
    problems = []
    for p in graph.params.values():
        stored = p.name if p.name in header else aliases.get(p.name)
        if stored is None:
            problems.append(f"'{p.name}' is missing")
            continue
        dtype, shape = header[stored]
        want = _SAFETENSORS_DTYPES.get(p.dtype, p.dtype)
        if shape != tuple(p.shape) or dtype != want:
            problems.append(f"'{p.name}' is {dtype}{list(shape)}, the graph declares {want}{list(p.shape)}")
    unknown = set(header) - set(graph.params)
    extra = sorted(unknown - set(tied_names(graph))) if unknown else []     # tied names: only when there are others
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
