"""Lowerings of activations to torch functions (PReLU to nn.PReLU, which owns its slope)."""

from __future__ import annotations

from archdsl.backends.torch.registry import lowering
from archdsl.backends.torch.rules.common import ctor, fn
from archdsl.ir.types import TensorType
from archdsl.ops import activation as A
from archdsl.ops.base import OpDef

# ops whose lowering is a one-argument function
_FUNCTIONS: dict[type[OpDef], str] = {A.ReLU: "F.relu", A.ReLU6: "F.relu6", A.SiLU: "F.silu", A.Mish: "F.mish", A.Sigmoid: "torch.sigmoid",
              A.Hardsigmoid: "F.hardsigmoid", A.Hardswish: "F.hardswish", A.Tanh: "torch.tanh",
              A.LogSigmoid: "F.logsigmoid"}


# In-place forms (registry.Lowering): relu_/sigmoid_/tanh_ backward reads the result, so they go in place
# under autograd too; silu_, hardswish_, hardsigmoid_, mish_ and relu6's hardtanh_ read the input, so only
# where it does not require grad. SiLU, Mish, Hardswish, Hardsigmoid and ReLU6 results are fresh (their
# backward reads the input); ReLU, Sigmoid and Tanh save their result.
_NO_GRAD_INPLACE = {op: f"{f}({{0}}, inplace=not {{0}}.requires_grad)"
                    for op, f in _FUNCTIONS.items() if op in (A.SiLU, A.Mish, A.Hardswish, A.Hardsigmoid, A.ReLU6)}


@lowering(*_FUNCTIONS, fresh=set(_NO_GRAD_INPLACE),
          inplace={A.ReLU: "torch.relu_({0})", A.Sigmoid: "torch.sigmoid_({0})", A.Tanh: "torch.tanh_({0})"}
          | _NO_GRAD_INPLACE)
def _unary(op: OpDef, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"{_FUNCTIONS[type(op)]}({args[0]})"


@lowering(A.LeakyReLU)
def _leaky_relu(op: A.LeakyReLU, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return fn("F.leaky_relu", args[0], negative_slope=op.negative_slope)


@lowering(A.ELU)
def _elu(op: A.ELU, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return fn("F.elu", args[0], alpha=op.alpha)


@lowering(A.GELU)
def _gelu(op: A.GELU, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return fn("F.gelu", args[0], approximate=op.approximate)


@lowering(A.Softplus)
def _softplus(op: A.Softplus, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return fn("F.softplus", args[0], beta=op.beta, threshold=op.threshold)


@lowering(A.Softmax, A.LogSoftmax)
def _softmax(op: A.Softmax, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    name = "torch.log_softmax" if isinstance(op, A.LogSoftmax) else "torch.softmax"
    return fn(name, args[0], dim=op.dim)


def _prelu_module(op: A.PReLU, ins: list[TensorType]) -> str:
    return ctor("nn.PReLU", num_parameters=op.num_parameters, init=op.init)


@lowering(A.PReLU, module=_prelu_module)
def _prelu(op: A.PReLU, args: list[str], ref: str | None, ins: list[TensorType]) -> str:
    return f"{ref}({args[0]})"
