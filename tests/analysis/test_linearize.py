"""The linear interpreter: f(x) = A(x) x + c(x) with the nonlinearities frozen at x; A against the Jacobian."""

from __future__ import annotations

import pytest
import torch

import archdsl
from archdsl.testing import randomize

SMALL = """model M() {
  in x: [N, 3, H, W]
  c1 = Conv2d(8, 3, padding=1)
  bn = BatchNorm2d()
  act = PReLU(8)
  c2 = Conv2d(8, 3, stride=2, padding=1)
  fc = Linear(5)
  out x |> c1 |> bn |> %s |> MaxPool2d(2) |> c2 |> act |> %s |> AdaptiveAvgPool2d(1) |> flatten |> fc
}
"""


def _model(text: str, seed: int = 1) -> torch.nn.Module:
    return randomize(archdsl.build(text).double(), seed=seed).eval()


@pytest.mark.parametrize("first,second", [("relu", "leaky_relu"), ("hardswish", "hardsigmoid"), ("gelu", "tanh")])
def test_frozen_network_is_the_first_order_expansion(first: str, second: str) -> None:
    model = _model(SMALL % (first, second))
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    li = archdsl.linearize(model, x)
    jac = torch.autograd.functional.jacobian(model, x).reshape(10, -1)
    v, u = torch.randn_like(x), torch.randn(2, 5, dtype=torch.float64)
    assert torch.allclose(li.output, model(x).detach(), rtol=0, atol=1e-12)
    assert li.error() <= 1e-10                                     # A(x) x + c(x) == f(x)
    assert torch.allclose(li.matvec(v).reshape(-1), jac @ v.reshape(-1), atol=1e-10)
    assert torch.allclose(li.rmatvec(u).reshape(-1), jac.T @ u.reshape(-1), atol=1e-10)
    assert torch.allclose(li.bias.reshape(-1), model(x).detach().reshape(-1) - jac @ x.reshape(-1), atol=1e-10)
    votes, bias = li.votes((1, 3))
    assert votes.sum().item() + bias == pytest.approx(li.output[1, 3].item(), abs=1e-10)
    assert torch.allclose(li.column((0, 1, 2, 3)).reshape(-1), jac[:, (1 * 9 + 2) * 8 + 3], atol=1e-10)
    assert "frozen at their local slope" in li.describe()


def test_relu_network_bias_is_the_masked_network_at_zero() -> None:
    """For a piecewise-linear net c(x) is the network with x's masks and argmaxes applied to a zero input."""
    model = _model(SMALL % ("relu", "relu"))
    draw = torch.Generator().manual_seed(0)        # seeded: a larger random step once crossed a ReLU's kink
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64, generator=draw)
    li = archdsl.linearize(model, x)
    eps = 1e-6 * torch.randn(x.shape, dtype=x.dtype, generator=draw)  # the same linear region nearby
    near = archdsl.linearize(model, x + eps)
    assert torch.allclose(near.bias, li.bias, atol=1e-9) and torch.allclose(li.matvec(eps), model(x + eps).detach()
                                                                            - model(x).detach(), atol=1e-9)


@pytest.mark.parametrize("name,size", [("sesr_m5_x2", 12), ("espcn_x3", 10), ("resnet18", 32)])
def test_zoo_networks_split_into_input_part_and_bias(name: str, size: int) -> None:
    model = randomize(archdsl.build(name).double(), seed=0).eval()
    channels = next(iter(model.archdsl_graph.inputs.values())).shape[1]
    x = torch.randn(1, channels, size, size, dtype=torch.float64)
    li = archdsl.linearize(model, x)
    assert li.error() <= 1e-10
    index = (0, 0) if li.bias.dim() == 2 else (0, 0, size // 2, size // 2)
    row = li.row(index)
    assert row.shape == x.shape and (row * x).sum().item() + li.bias[index].item() == pytest.approx(
        li.output[index].item(), abs=1e-9)


def test_ops_that_cannot_be_frozen_are_refused() -> None:
    spec = "model E() {\n  in a: [N, 4]\n  in b: [N, 4]\n  out a + b\n}\n"
    with pytest.raises(archdsl.UsageError, match="one floating-point input"):
        archdsl.linearize(spec, torch.zeros(1, 4))
    with pytest.raises(archdsl.UsageError, match="a module built by archdsl"):
        archdsl.linearize(torch.nn.Linear(2, 2), torch.zeros(1, 2))


def test_vgg16_splits_into_input_part_and_bias_at_a_small_size() -> None:
    """VGG-16 from the zoo (float32, 32x32, seeded init): ReLU masks and max-pool argmaxes frozen, A against the
    Jacobian on a random direction, and one logit's pixel-wise votes plus its bias part."""
    model = archdsl.build("vgg16", num_classes=10).eval()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    li = archdsl.linearize(model, x)
    assert li.error() <= 1e-5
    v = torch.randn_like(x)
    _, jv = torch.func.jvp(model, (x,), (v,))
    assert torch.allclose(li.matvec(v), jv, rtol=1e-4, atol=1e-6)
    votes, bias = li.votes((0, 3))
    assert votes.sum().item() + bias == pytest.approx(li.output[0, 3].item(), rel=1e-4, abs=1e-6)
    assert "relu x15" in li.describe() and "max_pool2d x5" in li.describe()


ATTENTION = """model A() {
  in x: [N, T, 8]
  ln = LayerNorm()
  att = MultiheadSelfAttention(2)
  fc = Linear(3)
  out x |> ln |> att |> gelu |> fc
}
"""


def test_attention_weights_are_frozen_at_x() -> None:
    """A(x) v = out_proj(P(x) (v W_v + 0)): torch's own nn.MultiheadAttention with query = key = the input at x and
    value = the direction, minus its response to a zero value, is the oracle (before the later ops)."""
    model = randomize(archdsl.build(ATTENTION).double(), seed=2).eval()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    li = archdsl.linearize(model, x)
    assert li.error() <= 1e-10
    assert "attention weights frozen at x" in li.describe() and "multihead_self_attention x1" in li.describe()
    sub = archdsl.build(ATTENTION.replace(" |> gelu |> fc", "").replace("  fc = Linear(3)\n", "")).double().eval()
    sub.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("fc.")})
    frozen = archdsl.linearize(sub, x)
    h = sub.ln(x).detach()
    v = torch.randn_like(x)
    with torch.no_grad():
        jv = torch.func.jvp(sub.ln, (x,), (v,))[1]
        want = sub.att(h, h, jv, need_weights=False)[0] - sub.att(h, h, torch.zeros_like(h), need_weights=False)[0]
    assert torch.allclose(frozen.matvec(v), want, atol=1e-10)
    with torch.no_grad():                                          # the Jacobian also moves the weights
        jac = (sub(x + 1e-6 * v) - sub(x - 1e-6 * v)) / 2e-6
    assert (frozen.matvec(v) - jac).abs().max().item() > 1e-3


def test_scaled_dot_product_attention_is_linear_in_its_values_once_frozen() -> None:
    text = """model S() {
  in x: [N, T, 6]
  q = Linear(6)
  k = Linear(6)
  v = Linear(6, bias=false)
  out scaled_dot_product_attention(q(x), k(x), v(x), is_causal=true)
}
"""
    model = randomize(archdsl.build(text).double(), seed=3).eval()
    x = torch.randn(1, 4, 6, dtype=torch.float64)
    li = archdsl.linearize(model, x)
    assert li.error() <= 1e-10 and li.bias.abs().max().item() <= 1e-12      # P(x) v(x): no bias without v's
    d = torch.randn_like(x)
    with torch.no_grad():
        p = torch.nn.functional.scaled_dot_product_attention(model.q(x), model.k(x), torch.eye(4, dtype=x.dtype)
                                                             .expand(1, 4, 4), is_causal=True)
    assert torch.allclose(li.matvec(d), p @ model.v(d), atol=1e-10)
