"""Zoo models exported directly to ONNX: onnx.checker (full), the author's names, dynamic dims that really are
dynamic (two batch sizes and two image sizes), and onnxruntime equal to the PyTorch backend.

Ten models cover the op families in the default run; every other zoo model is in the ``slow`` sweep
(``pytest -m slow tests/backends/onnx/test_onnx_zoo.py``)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from archdsl import zoo  # noqa: E402
from archdsl.backends.onnx import onnx_parity, to_onnx  # noqa: E402
from archdsl.backends.onnx.parity import example_inputs, session, small_sizes  # noqa: E402
from archdsl.backends.torch.build import build_module  # noqa: E402

# one model per family of ops: residual CNN, SE + hardswish, channel shuffle, depthwise + SE, transposed conv,
# sub-pixel conv, attention bias + hardswish, additive attention + LayerNorm, MHSA transformer-free pyramids
FAST = ["resnet18", "mobilenet_v3_small", "shufflenet_v2_x1_0", "regnet_y_400mf", "dcgan_generator", "espcn_x3",
        "levit_128", "swiftformer_xs", "squeezenet1_1", "pvt_v2_b0"]


@functools.lru_cache(maxsize=2)      # the slow sweep visits each model's two sizes in a row
def exported(name: str):
    """(graph, eval module, ORT session) of a zoo model, exported once per session."""
    graph = zoo.compile(name)
    module = build_module(graph, seed=0).eval()
    proto = to_onnx(graph)
    return graph, module, proto, session(proto.SerializeToString())


def sizes_at(graph, batch: int, step: int) -> dict[str, int]:
    """The smallest valid sizes, then a larger batch and ``step`` more size steps on every other symbol."""
    env = small_sizes(graph, batch=1)
    leading = {str(t.shape[0]) for t in graph.inputs.values() if t.rank and not isinstance(t.shape[0], int)}
    return {k: batch if k in leading else v + 16 * step for k, v in env.items()}


SIZES = [(1, 0, "small"), (3, 1, "bigger")]
SWEEP = [pytest.param(name, batch, step, id=f"{name}-{label}",
                      marks=() if name in FAST else pytest.mark.slow)
         for name in FAST + [n for n in zoo.names() if n not in FAST] for batch, step, label in SIZES]


@pytest.mark.parametrize(("name", "batch", "step"), SWEEP)
def test_onnxruntime_equals_torch_at_two_sizes(name, batch, step):
    graph, module, _, sess = exported(name)
    env = sizes_at(graph, batch, step)
    feeds = example_inputs(graph, env, seed=step)
    got = sess.run(None, feeds)
    with torch.no_grad():
        want = module(*(torch.from_numpy(feeds[k]) for k in graph.inputs))
    want = want if isinstance(want, tuple) else (want,)
    for w, g in zip(want, got, strict=True):
        w = w.numpy().astype(np.float64)
        assert g.shape == w.shape
        assert np.linalg.norm(g - w) <= 1e-5 * np.linalg.norm(w), f"{name} at {env}"


@pytest.mark.parametrize("name", ["resnet18", "levit_128"])
def test_names_dims_and_versions(name):
    graph, _, proto, _ = exported(name)
    assert proto.ir_version == 10 and proto.opset_import[0].version == 21
    assert proto.producer_name == "archdsl" and proto.graph.name == name
    inits = {i.name for i in proto.graph.initializer}
    assert {k for k in graph.params if not k.endswith("num_batches_tracked")} <= inits
    declared = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input]
    assert declared == [[d if isinstance(d, int) else str(d) for d in t.shape] for t in graph.inputs.values()]
    assert [o.name for o in proto.graph.output] == list(graph.outputs)


def test_resnet18_author_names_and_no_unused_buffers():
    graph, _, proto, _ = exported("resnet18")
    inits = {i.name for i in proto.graph.initializer}
    assert "layer1.0.conv1.weight" in inits and "layer4.1.bn2.running_var" in inits
    assert not any(n.endswith("num_batches_tracked") for n in inits)
    assert "layer1.0.conv1" in {n.name for n in proto.graph.node}
    assert sum(n.op_type == "Identity" for n in proto.graph.node) == 0


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_blocks_as_model_local_functions(name):
    graph, _, flat, sess = exported(name)
    proto = to_onnx(graph, functions=True)
    names = {f.name for f in proto.functions}
    assert names == set(graph.module_docs) and all(f.domain == "archdsl.blocks" for f in proto.functions)
    assert len(proto.graph.node) < len(flat.graph.node)
    feeds = example_inputs(graph, small_sizes(graph))
    assert np.array_equal(session(proto.SerializeToString()).run(None, feeds)[0], sess.run(None, feeds)[0])


def test_deploy_form_exports_the_same_function():
    report = onnx_parity("resnet18", passes="deploy")
    assert report.ok, str(report)
    proto = to_onnx("resnet18", passes="deploy")
    assert not any(n.op_type == "BatchNormalization" for n in proto.graph.node)
