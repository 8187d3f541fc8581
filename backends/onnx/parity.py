"""onnxruntime against the PyTorch backend on the same weights and inputs: the ONNX backend's proof."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from archdsl.backends.onnx.export import export_model, graph_of
from archdsl.backends.onnx.lower import DEFAULT_OPSET
from archdsl.backends.onnx.weights import Weights, read_safetensors
from archdsl.errors import Diagnostic, ShapeError, UsageError
from archdsl.ir.graph import Graph
from archdsl.ir.symbols import sizes_near

SIDES = (8, 16, 32, 48, 64, 96, 128, 160, 224)     # spatial sizes tried for the smallest valid input
TOLERANCE = {"float32": 1e-5, "float64": 1e-10, "float16": 1e-2, "bfloat16": 1e-2}


@dataclass(frozen=True)
class OutputParity:
    """One output: relative error ||ort - torch|| / ||torch||, largest absolute difference, and the bound."""

    name: str
    shape: tuple[int, ...]
    rel_error: float
    max_abs: float
    tolerance: float

    @property
    def ok(self) -> bool:
        """True when the relative error is within the tolerance (and nothing is NaN)."""
        return bool(self.rel_error <= self.tolerance)


@dataclass(frozen=True)
class ParityReport:
    """What :func:`onnx_parity` measured: the sizes used and one entry per output."""

    model: str
    sizes: dict[str, int]
    outputs: list[OutputParity] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every output within tolerance."""
        return all(o.ok for o in self.outputs)

    def __str__(self) -> str:
        lines = [f"{self.model} at {self.sizes or 'static sizes'}: {'ok' if self.ok else 'MISMATCH'}"]
        lines += [f"  {o.name} {list(o.shape)}: rel {o.rel_error:.2e} (max abs {o.max_abs:.2e}, tol {o.tolerance:g})"
                  for o in self.outputs]
        return "\n".join(lines)


def small_sizes(graph: Graph, batch: int = 2, side: int | None = None) -> dict[str, int]:
    """Sizes for the input symbols: ``batch`` for leading axes, the smallest side every shape accepts otherwise."""
    from archdsl.analysis import bind

    leading = {str(t.shape[0]) for t in graph.inputs.values() if t.rank and not isinstance(t.shape[0], int)}
    for s in (side,) if side else SIDES:
        env = sizes_near(graph.inputs, s, batch, leading)      # P = side // 32 for [N, 3, 32*P, ..]
        try:
            bind(graph, env)
        except ShapeError:
            continue
        return env
    raise UsageError(Diagnostic(f"no input size in {SIDES} fits model {graph.name}", graph.span,
                                hint="pass the inputs explicitly"))


def example_inputs(graph: Graph, sizes: Mapping[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs of the graph's types (integer ids below every consuming Embedding's table size)."""
    from archdsl.ops.embed import Embedding

    rng = np.random.default_rng(seed)
    out = {}
    for name, t in graph.inputs.items():
        shape = tuple(d if isinstance(d, int) else d.evaluate(dict(sizes)) for d in t.shape)
        if t.dtype in ("int64", "int32"):
            tables = [n.op.num_embeddings for n in graph.nodes if name in n.inputs and isinstance(n.op, Embedding)]
            out[name] = rng.integers(0, min(tables, default=2), size=shape).astype(t.dtype)
        elif t.dtype == "bool":
            out[name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            out[name] = rng.standard_normal(shape).astype(t.dtype)
    return out


def _state(graph: Graph, weights: Weights, seed: int) -> tuple[Any, dict[str, Any]]:
    """The torch module and the state_dict both backends use."""
    from archdsl.backends.torch.build import build_module

    module = build_module(graph, seed=seed)
    if weights is not None:
        state = read_safetensors(weights) if not isinstance(weights, Mapping) else dict(weights)
        missing = module.load_state_dict(state, strict=False).missing_keys
        if any(not k.endswith("num_batches_tracked") for k in missing):
            raise UsageError(Diagnostic(f"the weights miss {', '.join(missing[:4])} of model {graph.name}",
                                        hint="give the weights saved for this model (its model.safetensors), or "
                                             "no weights for a seeded initialisation"))
    return module.eval(), dict(module.state_dict())


def session(model_bytes: bytes):
    """An onnxruntime CPU session, quiet (warnings about unused initialisers are not the user's concern)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def onnx_parity(source: Any, model: str | None = None, *, weights: Weights = None,
                inputs: Mapping[str, Any] | None = None, opset: int = DEFAULT_OPSET, seed: int = 0,
                sizes: Mapping[str, int] | None = None, passes: str | None = None, **params: Any) -> ParityReport:
    """Run the ONNX export under onnxruntime and the PyTorch backend on the same weights and inputs.

    With ``passes`` (``"deploy"``) the exported model is the simplified one, compared against the PyTorch
    module of the spec as written (in eval mode): the deploy form must compute the same function.
    """
    import onnx_ir as ir
    import torch

    graph = graph_of(source, model, **params)
    module, state = _state(graph, weights, seed)
    env = dict(sizes) if sizes is not None else ({} if inputs is not None else small_sizes(graph))
    feeds = {k: np.asarray(v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v)
             for k, v in (inputs if inputs is not None else example_inputs(graph, env, seed)).items()}
    proto = ir.to_proto(export_model(graph, state, opset, passes=passes))
    got = session(proto.SerializeToString()).run(None, feeds)
    with torch.no_grad():
        ref = module(*(torch.from_numpy(np.ascontiguousarray(feeds[k])) for k in graph.inputs))
    ref = ref if isinstance(ref, tuple) else (ref,)
    types = graph.output_types()
    outs = []
    for (name, t), want, have in zip(types.items(), ref, got, strict=True):
        want = want.detach().double().numpy()
        have = np.asarray(have, dtype=np.float64)
        if have.shape != want.shape:
            outs.append(OutputParity(name, tuple(have.shape), float("inf"), float("inf"), 0.0))
            continue
        diff = np.linalg.norm((have - want).ravel())
        scale = np.linalg.norm(want.ravel())
        rel = float(diff / scale) if scale > 0 else float(diff)
        outs.append(OutputParity(name, tuple(have.shape), rel if np.isfinite(rel) else float("inf"),
                                 float(np.max(np.abs(have - want), initial=0.0)), TOLERANCE.get(t.dtype, 1e-5)))
    return ParityReport(graph.name, env, outs)
