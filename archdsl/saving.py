"""Save a built model as plain files (model.py, weights.safetensors, graph.json) and load it back without pickle."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from archdsl.errors import Diagnostic, UsageError
from archdsl.ir.graph import Graph

if TYPE_CHECKING:   # torch is imported only when a model is saved or loaded (keeps `import archdsl` light)
    import torch

MODEL_FILE = "model.py"
WEIGHTS_FILE = "weights.safetensors"
GRAPH_FILE = "graph.json"
FILES = (MODEL_FILE, WEIGHTS_FILE, GRAPH_FILE)
_ALIASES_KEY = "archdsl.aliases"   # safetensors metadata: {"tied.name": "first.name"} for shared tensors


def save_built(graph: Graph, module: torch.nn.Module, outdir: str | os.PathLike, force: bool = False,
               source: str | None = None) -> dict[str, Path]:
    """Write model.py, weights.safetensors and graph.json into ``outdir`` atomically; return the paths.

    The files are written into a temporary folder beside ``outdir`` and renamed into place, so readers
    never see a half-written model. An existing ``outdir`` is replaced only with ``force=True``, and only
    when it holds nothing but files this function writes.
    """
    from archdsl.backends.torch.codegen import generate_source

    out = Path(outdir).absolute()
    _check_target(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    code = generate_source(graph, check_inputs=hasattr(module, "_input_spec"),
                           source=source or (graph.span.file if graph.span else "a spec"))
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        (tmp / MODEL_FILE).write_text(code, encoding="utf-8")
        (tmp / GRAPH_FILE).write_text(graph.to_json(), encoding="utf-8")
        _save_weights(module.state_dict(), tmp / WEIGHTS_FILE)
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {name: out / name for name in FILES}


def load_built(outdir: str | os.PathLike, check_inputs: bool = False) -> torch.nn.Module:
    """Rebuild the module saved in ``outdir`` from graph.json and load its weights (strict, no pickle).

    model.py is never imported: the module is regenerated from the graph, which is verified first.
    """
    from archdsl.backends.torch.build import build_module
    from archdsl.verify import verify

    folder = Path(outdir)
    missing = [name for name in (GRAPH_FILE, WEIGHTS_FILE) if not (folder / name).is_file()]
    if missing:
        raise UsageError(Diagnostic(f"{folder} is not a built model: missing {', '.join(missing)}",
                                    hint="create one with `archdsl build FILE -o OUTDIR`"))
    try:
        graph = Graph.from_json((folder / GRAPH_FILE).read_text(encoding="utf-8"))
    except (ValueError, KeyError, TypeError) as exc:   # pydantic's ValidationError is a ValueError
        raise UsageError(Diagnostic(f"{folder / GRAPH_FILE} is not a valid archdsl graph: {exc}")) from exc
    verify(graph)
    module = build_module(graph, seed=None, check_inputs=check_inputs)
    from safetensors import SafetensorError

    try:
        module.load_state_dict(_load_weights(folder / WEIGHTS_FILE), strict=True)
    except (SafetensorError, RuntimeError, OSError, ValueError, KeyError) as exc:
        raise UsageError(Diagnostic(f"{folder / WEIGHTS_FILE} does not fit {folder / GRAPH_FILE}: {exc}")) from exc
    return module


def _check_target(out: Path, force: bool) -> None:
    """Refuse to clobber ``out`` unless forced, and never replace a folder holding other files."""
    if not out.exists() and not out.is_symlink():
        return
    if not force:
        raise UsageError(Diagnostic(f"{out} already exists", hint="pass --force (force=True) to replace it"))
    if out.is_symlink() or not out.is_dir():
        raise UsageError(Diagnostic(f"{out} exists and is not a folder; refusing to replace it"))
    foreign = sorted(p.name for p in out.iterdir() if p.name not in FILES)
    if foreign:
        raise UsageError(Diagnostic(f"refusing to replace {out}: it holds files archdsl did not write "
                                    f"({', '.join(foreign[:3])})", hint="choose another output folder"))


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is swapped out first and removed afterwards."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.replace(out, old)   # replaces the empty placeholder folder
    try:
        os.rename(tmp, out)
    except OSError:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _save_weights(state: dict[str, torch.Tensor], path: Path) -> None:
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
    save_file(tensors, str(path), metadata={_ALIASES_KEY: json.dumps(aliases)} if aliases else None)


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    """The state dict saved by :func:`_save_weights`, aliases restored."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        state = {name: f.get_tensor(name) for name in f.keys()}
        aliases = json.loads((f.metadata() or {}).get(_ALIASES_KEY, "{}"))
    for name, target in aliases.items():
        state[name] = state[target]
    return state
