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
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    li = archdsl.linearize(model, x)
    eps = 1e-3 * torch.randn_like(x)                               # the same linear region nearby
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
