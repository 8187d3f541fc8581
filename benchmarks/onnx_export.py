"""archdsl's direct IR -> ONNX export against torch.onnx.export (TorchScript and dynamo exporters), same process.

Run from the repository root: ``python -m benchmarks.onnx_export`` (``--models resnet50,vit_b_16``,
``--repeat``, ``--no-dynamo``). For each model, every contender starts from the same built eval module and its
state_dict and writes a .onnx file with dynamic batch (and image) dims:

- ours: lower the Graph with onnx_ir and save (``export_model`` + ``save``; the full onnx.checker is timed apart);
  "archdsl deploy" exports the graph after the ``deploy`` passes (BatchNorm folded, as both exporters fold it;
  the passes' time is printed apart); the exporters' ratios compare with it
- torchscript: ``torch.onnx.export(..., dynamo=False, dynamic_axes=...)``
- dynamo: ``torch.onnx.export(..., dynamo=True, dynamic_shapes=...)`` (skipped when it fails offline)

Printed: export seconds (best of --repeat) and ratio ours/theirs, node counts, and onnxruntime latency
(median, batch 1 at 224x224) of each exported model with the ratio ours/theirs. Goal (issue 10): export
<= 0.25x the faster exporter; nodes <=; latency <= 1.0x. No assertions: it prints.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch

from archdsl import zoo
from archdsl.backends.onnx import export_model, save
from archdsl.backends.onnx.export import check, deploy
from archdsl.backends.onnx.parity import session
from archdsl.backends.torch.build import build_module


def best(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time of ``repeat`` calls (interference only adds time)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@contextlib.contextmanager
def _no_mha_fastpath():
    """nn.MultiheadAttention's eval fast path (aten::_native_multi_head_attention) has no ONNX export; the
    exporters get the composite path, as a user exporting a ViT must arrange."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def torch_export(module: torch.nn.Module, x: torch.Tensor, path: Path, dynamo: bool, spatial: bool) -> None:
    """torch.onnx.export with a dynamic batch (and image size when the model allows it), quietly."""
    quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
    with warnings.catch_warnings(), quiet[0], quiet[1], _no_mha_fastpath():
        warnings.simplefilter("ignore")
        if dynamo:
            dims = {0: torch.export.Dim("N", min=1, max=64)}
            if spatial:
                dims |= {2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO}
            torch.onnx.export(module, (x,), str(path), dynamo=True, dynamic_shapes=(dims,),
                              input_names=["image"], output_names=["out"])
        else:
            axes = {0: "N", 2: "H", 3: "W"} if spatial else {0: "N"}
            torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=18, input_names=["image"],
                              output_names=["out"], dynamic_axes={"image": axes, "out": {0: "N"}})


def latencies(paths: dict[str, Path], x: np.ndarray, rounds: int) -> dict[str, float]:
    """Median onnxruntime latency of one batch per model, the models interleaved round by round."""
    sessions = {label: session(str(path)) for label, path in paths.items()}
    times: dict[str, list[float]] = {label: [] for label in sessions}
    for sess in sessions.values():
        sess.run(None, {sess.get_inputs()[0].name: x})
    for r in range(rounds):
        order = list(sessions) if r % 2 == 0 else list(reversed(sessions))
        for label in order:
            sess = sessions[label]
            start = time.perf_counter()
            sess.run(None, {sess.get_inputs()[0].name: x})
            times[label].append(time.perf_counter() - start)
    return {label: statistics.median(t) for label, t in times.items()}


def bench(name: str, repeat: int, dynamo: bool, folder: Path) -> None:
    """Export ``name`` with each contender and print times, node counts and latencies."""
    graph = zoo.compile(name)
    module = build_module(graph, seed=0).eval()
    state = dict(module.state_dict())
    spatial = any(len(getattr(d, "symbols", ())) for t in graph.inputs.values() for d in t.shape[2:])
    x = torch.randn(1, 3, 224, 224)
    ours_path = folder / f"{name}.archdsl.onnx"

    def ours() -> None:
        save(export_model(graph, state), ours_path, force=True, validate=False)

    rows = {"archdsl": (best(ours, repeat), ours_path)}
    check_s = best(lambda: check(ours_path), 1)
    deploy_path = folder / f"{name}.deploy.onnx"
    start = time.perf_counter()
    dgraph, dstate = deploy(graph, state, 0, "deploy")          # BatchNorms folded, as the exporters fold them
    passes_s = time.perf_counter() - start
    rows["archdsl deploy"] = (best(lambda: save(export_model(dgraph, dstate), deploy_path, force=True,
                                                validate=False), repeat), deploy_path)
    for label, use_dynamo in (("torchscript", False), ("dynamo", True)):
        if use_dynamo and not dynamo:
            continue
        path = folder / f"{name}.{label}.onnx"
        try:
            with torch.no_grad():
                rows[label] = (best(lambda p=path, d=use_dynamo: torch_export(module, x, p, d, spatial), repeat), path)
        except Exception as exc:   # noqa: BLE001 - an exporter that fails offline is reported, not fatal
            print(f"  {label}: failed ({type(exc).__name__}: {str(exc)[:120]})")
    print(f"{name}: {sum(p.numel() for p in module.parameters()):,} parameters; onnx.checker full check of ours "
          f"{check_s:.2f} s and the deploy passes {passes_s:.2f} s (neither in the export times)")
    lat = latencies({label: path for label, (_, path) in rows.items()}, x.numpy(), 15)
    nodes = {label: len(onnx.load(str(path), load_external_data=False).graph.node) for label, (_, path) in rows.items()}
    ours_s = rows["archdsl"][0]
    for label, (seconds, _) in rows.items():
        ratio = "" if label.startswith("archdsl") else (
            f"  ours/theirs: export {ours_s / seconds:.3f}x, nodes {nodes['archdsl deploy']}/{nodes[label]} (deploy), "
            f"latency {lat['archdsl'] / lat[label]:.3f}x (deploy {lat['archdsl deploy'] / lat[label]:.3f}x)")
        print(f"  {label:<14} export {seconds:6.3f} s  {nodes[label]:5d} nodes  ORT {lat[label] * 1e3:7.2f} ms{ratio}")


def main() -> None:
    """Parse arguments and run every model."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="resnet50", help="comma-separated zoo names (default resnet50)")
    p.add_argument("--repeat", type=int, default=3, help="export repetitions; the best time counts (default 3)")
    p.add_argument("--no-dynamo", action="store_true", help="skip the dynamo exporter")
    args = p.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            bench(name.strip(), args.repeat, not args.no_dynamo, Path(tmp))


if __name__ == "__main__":
    main()
