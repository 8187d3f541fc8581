"""In-place forms in generated code (backends/torch/registry.Lowering): bitwise the out-of-place results.

The code generator overwrites a tensor only where its producer's backward never reads it, nothing else reads
it, and the op's backward does not need it (or the tensor does not require grad). These tests build each
model twice, with and without in-place forms, and require equal outputs, input gradients, parameter
gradients and BatchNorm statistics, bit for bit, in training and in eval, with and without grad.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import archdsl
from archdsl.backends.torch.build import load_source
from archdsl.backends.torch.codegen import class_name, generate_source
from archdsl.ir.graph import Graph

# unary ops of the cases: in place always (relu, sigmoid, tanh), without grad only (silu ...), never (gelu)
UNARY = ("relu", "silu", "hardswish", "hardsigmoid", "mish", "relu6", "sigmoid", "tanh", "gelu")


def build(graph: Graph, inplace: bool, seed: int = 0) -> torch.nn.Module:
    """The module for ``graph`` with (or without) in-place forms, initialised under ``seed``."""
    cls = load_source(generate_source(graph, inplace=inplace), class_name(graph))
    torch.manual_seed(seed)
    return cls()


def run(module: torch.nn.Module, x: torch.Tensor, train: bool, grad: bool, seed: int = 1):
    """Outputs, the input's gradient and every parameter's gradient and buffer after one step."""
    module.train(train)
    module.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(grad)
    torch.manual_seed(seed)                  # the same dropout / stochastic-depth draws on both sides
    with torch.set_grad_enabled(grad):
        out = module(x)
        if grad:
            out.backward(torch.linspace(-1, 1, out.numel()).reshape(out.shape))
    grads = [p.grad for p in module.parameters()] + [x.grad]
    return out.detach(), grads, [b.clone() for b in module.buffers()]


def assert_bitwise_equal(graph: Graph, x: torch.Tensor) -> None:
    """Both forms agree bit for bit in train (with grad), eval with grad and eval under no_grad."""
    fast, slow = build(graph, inplace=True), build(graph, inplace=False)
    for train, grad in ((True, True), (False, True), (False, False)):
        (a, ga, ba), (b, gb, bb) = run(fast, x, train, grad), run(slow, x, train, grad)
        assert torch.equal(a, b), f"outputs differ (train={train}, grad={grad})"
        assert all((u is None and v is None) or torch.equal(u, v) for u, v in zip(ga, gb, strict=True))
        assert all(torch.equal(u, v) for u, v in zip(ba, bb, strict=True))


@st.composite
def dags(draw) -> str:
    """A model over [N, 4, H, W] values: convs, BatchNorms, activations, adds and regularisers, each reading
    any earlier value (so some values have several readers); the output sums the values nobody reads."""
    lines, layers, values, read = [], [], ["x"], set()
    for i in range(draw(st.integers(2, 9))):
        kind = draw(st.sampled_from(("conv", "bn", "unary", "unary", "add", "drop_path", "dropout")))
        src = draw(st.sampled_from(values))
        other = draw(st.sampled_from(values))
        read.update((src, other) if kind == "add" else (src,))
        name = f"v{i}"
        if kind in ("conv", "bn"):
            layers.append(f"  l{i} = " + ("Conv2d(4, 3, padding=1)" if kind == "conv" else "BatchNorm2d()"))
            lines.append(f"  {name} = {src} |> l{i}")
        elif kind == "unary":
            lines.append(f"  {name} = {draw(st.sampled_from(UNARY))}({src})")
        elif kind == "add":
            lines.append(f"  {name} = {src} + {other}")
        elif kind == "drop_path":
            lines.append(f'  {name} = {src} |> StochasticDepth({draw(st.sampled_from((0.0, 0.5)))}, "row")')
        else:
            lines.append(f"  {name} = dropout({src}, {draw(st.sampled_from((0.0, 0.3)))})")
        values.append(name)
    extra = draw(st.lists(st.sampled_from(values[1:]), max_size=1))    # an output operand read elsewhere too
    last = " + ".join(dict.fromkeys([v for v in values if v not in read] + extra))
    return "\n".join(["model Case() {", "  in x: [N, 4, H, W]", *layers, *lines, f"  out {last}", "}"])


@given(dags())
def test_inplace_forms_are_bitwise_the_out_of_place_ones(spec: str) -> None:
    graph = archdsl.compile(spec)
    assert_bitwise_equal(graph, torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("name", ["efficientnet_b0", pytest.param("mobilenet_v3_small", marks=pytest.mark.slow),
                                  pytest.param("mobilenet_v2", marks=pytest.mark.slow)])
def test_zoo_models_inplace_bitwise(name: str) -> None:
    graph = archdsl.zoo.compile(name)
    assert_bitwise_equal(graph, torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)))


def test_forms_used_where_safe() -> None:
    """silu_ only without grad, relu_ always, add_ on a stochastic-depth result, nothing on a reused value."""
    graph = archdsl.compile("""\
model Case() {
  in x: [N, 4, H, W]
  conv = Conv2d(4, 3, padding=1)
  bn = BatchNorm2d()
  bn2 = BatchNorm2d()
  conv2 = Conv2d(4, 1)
  bn3 = BatchNorm2d()
  y = x |> conv |> bn |> silu |> bn2 |> relu
  z = y |> conv2 |> bn3 |> StochasticDepth(0.2, "row")
  out gelu(z + y)
}
""")
    body = generate_source(graph).split("def forward")[1]
    assert "F.silu(bn, inplace=not bn.requires_grad)" in body
    assert "torch.relu_(bn2)" in body
    assert "stochastic_depth.add_(" in body
    assert "F.gelu(" in body
    assert "torch.relu_" in body and body.count("_(") == 2     # relu_ and add_; the conv input y is read twice


def test_inplace_module_compiles() -> None:
    """torch.compile(fullgraph=True) traces the guarded in-place forms, in eval under no_grad and in training."""
    graph = archdsl.compile("""\
model Case() {
  in x: [N, 4, H, W]
  conv = Conv2d(4, 3, padding=1)
  bn = BatchNorm2d()
  out x |> conv |> bn |> silu |> StochasticDepth(0.0, "row") + x
}
""")
    module = build(graph, inplace=True)
    torch._dynamo.reset()
    try:
        compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
        x = torch.randn(2, 4, 6, 6)
        with torch.no_grad():
            torch.testing.assert_close(compiled.eval()(x), module.eval()(x))
        compiled.train()
        module.train()
        torch.testing.assert_close(compiled(x), module(x))
        compiled(x).sum().backward()
    finally:
        torch._dynamo.reset()
