"""The ONNX export API: a spec (or Graph) and its weights -> a checked ModelProto, or files written atomically."""

from __future__ import annotations

import contextlib
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import onnx_ir as ir

from archdsl.backends.onnx.lower import DEFAULT_OPSET, ExportError, check_opset, lower
from archdsl.backends.onnx.weights import Weights, resolve
from archdsl.errors import Diagnostic, UsageError
from archdsl.ir.graph import Graph

PROTO_LIMIT = 2**31 - 1                  # protobuf's 2 GB limit: larger models need external data
EXTERNAL_THRESHOLD = 1024                # tensors of at least this many bytes go to the data file


def graph_of(source: Any, model: str | None = None, **params: Any) -> Graph:
    """``source`` itself when it is a Graph, else the compiled model (path, spec text or zoo name)."""
    if isinstance(source, Graph):
        return source
    from archdsl.api import compile as compile_spec

    return compile_spec(source, model, **params)


def export_model(graph: Graph, weights: Weights = None, opset: int = DEFAULT_OPSET, seed: int = 0,
                 passes: str | None = None, functions: bool = False) -> ir.Model:
    """The onnx_ir model of ``graph`` with checked weights (``None``: the seeded PyTorch init).

    ``passes`` (a pipeline such as ``"deploy"`` or pass names) runs archdsl.passes on the graph and its
    weights first, so the deploy form (BatchNorms folded, re-param branches merged) is what gets exported.
    ``functions`` makes each documented block instance a model-local function (see functions.py).
    """
    check_opset(opset)
    if passes:
        graph, weights = deploy(graph, weights, seed, passes)
    model = lower(graph, resolve(graph, weights, seed), opset, metadata={"archdsl.passes": passes} if passes else None)
    if functions:
        from archdsl.backends.onnx.functions import outline_blocks

        outline_blocks(model, graph)
    return model


def deploy(graph: Graph, weights: Weights, seed: int, passes: str) -> tuple[Graph, dict]:
    """``graph`` and its weights after the pass pipeline ``passes``."""
    import torch

    from archdsl.backends.onnx.weights import read_safetensors, seeded
    from archdsl.ir.weights import Weights as TensorMap
    from archdsl.passes import run_pipeline

    if weights is None:
        state = seeded(graph, seed)
    elif isinstance(weights, (str, os.PathLike)):
        state = read_safetensors(weights)
    else:
        state = {k: v if isinstance(v, torch.Tensor) else torch.as_tensor(v) for k, v in weights.items()}
    result = run_pipeline(graph, TensorMap(state), passes)
    if result.weights is None:
        raise ValueError("the pass pipeline dropped the weights it was given")
    return result.graph, dict(result.weights.only(result.graph))


def check(proto: onnx.ModelProto | str | os.PathLike) -> None:
    """onnx.checker with the full check (strict shape inference); a failure is archdsl's bug, said plainly."""
    try:
        onnx.checker.check_model(proto if isinstance(proto, onnx.ModelProto) else str(proto), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(Diagnostic(f"the exported model fails onnx.checker: {exc}",
                                     hint="this is a bug in archdsl's ONNX backend; please report it")) from None


def to_onnx(source: Any, model: str | None = None, *, weights: Weights = None, opset: int = DEFAULT_OPSET,
            seed: int = 0, passes: str | None = None, functions: bool = False, validate: bool = True,
            **params: Any) -> onnx.ModelProto:
    """A spec (path, text, zoo name or Graph) as a checked ``onnx.ModelProto`` (eval-mode semantics).

    ``weights``: None (PyTorch-default init under ``seed``, as ``archdsl build``), a safetensors file or built
    folder, or a state_dict. Symbolic input dims stay dynamic (dim_params); names are the spec's. ``passes``
    (``"deploy"``) exports the simplified deploy form.
    """
    m = export_model(graph_of(source, model, **params), weights, opset, seed, passes, functions)
    proto = ir.to_proto(m)
    if proto.ByteSize() > PROTO_LIMIT:
        raise UsageError(Diagnostic("the model is larger than 2 GB, protobuf's limit for one ModelProto",
                                    hint="save it with external data: archdsl export ... --external-data"))
    if validate:
        check(proto)
    return proto


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def write_model(model: ir.Model, path: str | os.PathLike | io.BufferedIOBase) -> None:
    """Write ``model`` as one .onnx file, streaming each weight's bytes instead of building one big protobuf.

    The model is serialised without its initialisers, then a second ``graph`` field holding only the
    initialisers (TensorProto headers with the raw bytes) is appended. Protobuf parsers merge repeated
    occurrences of a message field, so readers see one graph; the file parses as ``ir.save`` would write it.
    """
    graph = model.graph
    held = list(graph.initializers.values())
    graph.initializers.clear()
    try:
        proto = ir.to_proto(model)
    finally:
        for value in held:
            graph.initializers.add(value)
    names = {v.name for v in held}
    kept = [v for v in proto.graph.value_info if v.name not in names]   # initialisers carry their own types
    del proto.graph.value_info[:]
    proto.graph.value_info.extend(kept)
    head = proto.SerializeToString()
    pieces: list[tuple[bytes, bytes]] = []
    for value in held:
        tensor = value.const_value
        if tensor is None:
            raise ValueError(f"initializer {value.name} holds no tensor")
        meta = onnx.TensorProto(name=value.name, dims=[int(d) for d in tensor.shape],  # type: ignore[arg-type]  # concrete
                                data_type=tensor.dtype.value).SerializeToString()
        data = tensor.tobytes()
        raw = b"\x4a" + _varint(len(data))                       # TensorProto.raw_data (field 9)
        pieces.append((b"\x2a" + _varint(len(meta) + len(raw) + len(data)) + meta + raw, data))   # initializer (5)
    with open(path, "wb") if not isinstance(path, io.IOBase) else contextlib.nullcontext(path) as f:
        f.write(head)
        f.write(b"\x3a" + _varint(sum(len(a) + len(b) for a, b in pieces)))                      # ModelProto.graph (7)
        for entry, data in pieces:
            f.write(entry)
            f.write(data)


@dataclass(frozen=True)
class Written:
    """What :func:`save` wrote: the model file, the external data file (or None) and their sizes."""

    model: Path
    data: Path | None

    def files(self) -> list[Path]:
        """The files, model first."""
        return [self.model] + ([self.data] if self.data else [])


def save(model: ir.Model, path: str | os.PathLike, *, external_data: bool | None = None, force: bool = False,
         validate: bool = True) -> Written:
    """Write ``model`` to ``path`` (and ``path``.data when external), checked before any file appears.

    ``external_data`` None chooses it when the weights exceed what one protobuf may hold. The files are
    committed with ``archdsl.output.write_files``: without ``force`` no target may exist (of two concurrent
    exports exactly one wins), with it regular files are replaced atomically; a symlink's target is replaced
    and a FIFO or device is written into. Every failure is a UsageError naming the path; nothing
    half-written is left behind.
    """
    from archdsl.output import output_error, write_file, write_files

    out = Path(os.path.realpath(os.fspath(path)))
    try:
        st = os.stat(out)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise output_error(path, exc) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise UsageError(Diagnostic(f"{os.fspath(path)} is a folder; give the .onnx file to write",
                                    hint=f"name a file in it: {os.path.join(os.fspath(path), 'model.onnx')}"))
    if st is not None and not force:
        raise UsageError(Diagnostic(f"{os.fspath(path)} already exists", hint="pass --force (force=True) to replace it"))
    if external_data is None:
        external_data = sum(v.const_value.nbytes for v in model.graph.initializers.values()
                            if v.const_value is not None) > PROTO_LIMIT // 2
    data_name = f"{out.name}.data" if external_data else None
    if st is not None and not stat.S_ISREG(st.st_mode):       # a FIFO or device: written into, never replaced
        if data_name:
            raise UsageError(Diagnostic(f"cannot write {os.fspath(path)} with external data: not a regular file",
                                        hint="write to a regular .onnx file (the weights go to a .data file "
                                             "beside it), or pass external_data=False for a model under 2 GB"))
        buffer = io.BytesIO()
        write_model(model, buffer)
        if validate:
            check(onnx.load_from_string(buffer.getvalue()))
        write_file(out, buffer.getvalue())
        return Written(out, None)

    def whole(p: Path) -> None:        # the model (and, with external data, the .data file beside it)
        if data_name:
            ir.save(model, p.with_name(out.name), external_data=data_name, size_threshold_bytes=EXTERNAL_THRESHOLD)
        else:
            write_model(model, p)

    def checked(p: Path) -> None:
        if not data_name:
            whole(p)
        if validate:
            check(p)

    # the data file first: it is written (with the model) and committed before the model that refers to it
    files = {data_name: whole, out.name: checked} if data_name else {out.name: checked}
    write_files(out.parent, files, force=force, display=os.fspath(path))
    return Written(out, out.parent / data_name if data_name else None)
