"""Generated modules trace cleanly: torch.compile(fullgraph=True) and torch.export with a dynamic batch."""

from __future__ import annotations

import pytest
import torch

import archdsl
from archdsl.backends.torch.build import build_module
from archdsl.ir.dims import SymDim
from tests.tiny_resnet import with_block

SPEC = with_block("""\
model Small(num_classes: int = 3) {
  in image: [N, 3, H, W]
  stem = seq[Conv2d(4, 3, padding=1, bias=false), BatchNorm2d()]
  layer1 = [BasicBlock(8, stride=2 if i == 0 else 1) for i in range(2)]
  fc = Linear(num_classes)
  out image |> stem |> relu |> MaxPool2d(2) |> layer1 |> AdaptiveAvgPool2d(1) |> flatten |> fc
}
""")


@pytest.fixture(scope="module")
def graph() -> archdsl.Graph:
    return archdsl.compile(SPEC)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _compile_matches(module: torch.nn.Module, backend: str) -> None:
    x = torch.randn(2, 3, 16, 16)
    compiled = torch.compile(module, fullgraph=True, backend=backend)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), module(x))


def test_torch_compile_fullgraph_aot_eager(graph):
    # aot_eager runs dynamo and AOTAutograd (the whole front end); inductor's C++ build is the slow test below.
    _compile_matches(build_module(graph, seed=0).eval(), "aot_eager")


def test_torch_compile_fullgraph_trains(graph):
    module = build_module(graph, seed=0)
    twin = build_module(graph, seed=0)
    x = torch.randn(4, 3, 16, 16)
    torch.compile(module, fullgraph=True, backend="aot_eager")(x).square().sum().backward()
    twin(x).square().sum().backward()
    for (name, p), q in zip(module.named_parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    torch.testing.assert_close(module.stem[1].running_mean, twin.stem[1].running_mean)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_torch_compile_fullgraph_inductor(graph):
    # About a minute on two busy CPU cores (C++ code generation), hence slow. Inductor itself still touches
    # torch.jit.script_method, whose DeprecationWarning pytest would turn into an error.
    _compile_matches(build_module(graph, seed=0).eval(), "inductor")


def _batch_dims(graph: archdsl.Graph) -> dict[str, dict[int, torch.export.Dim]]:
    """torch.export dynamic shapes for every input whose axis 0 is a plain symbol in the spec."""
    dims: dict[str, torch.export.Dim] = {}
    out = {}
    for name, t in graph.inputs.items():
        d = t.shape[0]
        if isinstance(d, SymDim) and str(d) in d.symbols:
            out[name] = {0: dims.setdefault(str(d), torch.export.Dim(str(d), min=1, max=1024))}
    return out


def test_torch_export_with_a_dynamic_batch(graph):
    module = build_module(graph, seed=0).eval()
    dynamic = _batch_dims(graph)
    assert dynamic == {"image": {0: dynamic["image"][0]}}
    program = torch.export.export(module, (torch.randn(2, 3, 16, 16),), dynamic_shapes=dynamic)
    exported = program.module()
    for batch in (3, 5):
        x = torch.randn(batch, 3, 16, 16)
        with torch.no_grad():
            torch.testing.assert_close(exported(x), module(x))
    assert {k for k, _ in program.named_parameters()} == {k for k, _ in module.named_parameters()}
