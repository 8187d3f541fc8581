"""The op registry: every op family module listed once, by hand (no import side effects).

A family's module is imported when one of its ops is first named (``lookup("Conv2d")`` imports ``ops.conv``
only): importing every family's pydantic classes costs more than compiling a ResNet. ``SPELLINGS`` says which
family defines each spelling; a test holds it equal to the op classes themselves (and prints the table when
an op is added).
"""

from __future__ import annotations

import difflib
import functools
import importlib
from types import ModuleType

from archdsl.ops.base import OpDef

FAMILY_NAMES = ("conv", "linear", "norm", "activation", "pool", "tensor", "shape", "attention", "embed", "resample",
                "regularize", "mixing", "linear_attention", "graph", "construct", "index", "compare")

# family -> the spellings of its ops (class name, then op name), in the order of the family's OPS
SPELLINGS: dict[str, tuple[str, ...]] = {
    "conv": ("Conv1d", "conv1d", "Conv2d", "conv2d", "Conv3d", "conv3d", "ConvTranspose2d", "conv_transpose2d"),
    "linear": ("Linear", "linear", "Bilinear", "bilinear"),
    "norm": ("BatchNorm1d", "batch_norm1d", "BatchNorm2d", "batch_norm2d", "BatchNorm3d", "batch_norm3d",
        "LayerNorm", "layer_norm", "LayerNorm2d", "layer_norm2d", "GroupNorm", "group_norm", "RMSNorm", "rms_norm",
        "InstanceNorm2d", "instance_norm2d", "LocalResponseNorm", "local_response_norm"),
    "activation": ("ReLU", "relu", "ReLU6", "relu6", "LeakyReLU", "leaky_relu", "PReLU", "prelu", "ELU", "elu",
        "GELU", "gelu", "SiLU", "silu", "Mish", "mish", "Sigmoid", "sigmoid", "Hardsigmoid", "hardsigmoid",
        "Hardswish", "hardswish", "Tanh", "tanh", "Softplus", "softplus", "LogSigmoid", "logsigmoid", "Softmax",
        "softmax", "LogSoftmax", "log_softmax"),
    "pool": ("MaxPool1d", "max_pool1d", "MaxPool2d", "max_pool2d", "AvgPool1d", "avg_pool1d", "AvgPool2d",
        "avg_pool2d", "AdaptiveAvgPool1d", "adaptive_avg_pool1d", "AdaptiveAvgPool2d", "adaptive_avg_pool2d",
        "AdaptiveMaxPool1d", "adaptive_max_pool1d", "AdaptiveMaxPool2d", "adaptive_max_pool2d", "GlobalAvgPool",
        "global_avg_pool", "GlobalMaxPool", "global_max_pool"),
    "tensor": ("Add", "add", "Sub", "sub", "Mul", "mul", "Div", "div", "AddN", "add_n", "ScalarArith", "scalar",
        "MatMul", "matmul", "ReduceMean", "mean", "ReduceSum", "reduce_sum", "Flatten", "flatten"),
    "shape": ("Reshape", "reshape", "Expand", "expand", "ExpandAs", "expand_as", "Permute", "permute", "Transpose",
        "transpose", "Squeeze", "squeeze", "Unsqueeze", "unsqueeze", "Concat", "concat", "Split", "split", "Chunk",
        "chunk", "Slice", "slice", "Select", "select", "Identity", "identity"),
    "attention": ("ScaledDotProductAttention", "scaled_dot_product_attention", "MultiheadSelfAttention",
        "multihead_self_attention", "Rotary", "rotary"),
    "embed": ("Parameter", "parameter", "Embedding", "embedding"),
    "resample": ("Upsample", "interpolate", "PixelShuffle", "pixel_shuffle", "PixelUnshuffle", "pixel_unshuffle",
        "ChannelShuffle", "channel_shuffle", "Pad", "pad"),
    "regularize": ("Dropout", "dropout", "Dropout2d", "dropout2d", "StochasticDepth", "stochastic_depth",
        "LayerScale", "layer_scale"),
    "mixing": ("Normalize", "normalize"),
    "linear_attention": ("LinearAttention", "linear_attention", "Retention", "retention", "LightningAttention",
        "lightning_attention", "SimpleGLA", "simple_gla", "GLA", "gla", "DeltaRule", "delta_rule",
        "GatedDeltaRule", "gated_delta_rule", "Mamba2Decay", "mamba2_decay", "ShortConvolution", "short_conv"),
    "graph": ("GraphConv", "graph_conv"),
    "construct": ("Arange", "arange", "Zeros", "zeros", "Ones", "ones", "Full", "full", "Eye", "eye", "Buffer",
        "buffer"),
    "index": ("IndexSelect", "index_select", "Gather", "gather", "Roll", "roll", "Where", "where", "Tril", "tril",
        "Triu", "triu", "Cumsum", "cumsum", "RepeatInterleave", "repeat_interleave", "Einsum", "einsum"),
    "compare": ("Eq", "eq", "Ne", "ne", "Lt", "lt", "Le", "le", "Gt", "gt", "Ge", "ge", "Abs", "absolute", "Clamp",
        "clamp", "Amax", "amax", "Amin", "amin", "Argmax", "argmax", "Argmin", "argmin"),
}
_FAMILY_OF = {spelling: family for family, names in SPELLINGS.items() for spelling in names}


def family(name: str) -> ModuleType:
    """The module of the op family ``name`` (``conv``), imported on first use."""
    return importlib.import_module(f"archdsl.ops.{name}")


def __getattr__(name: str) -> tuple[ModuleType, ...]:
    if name == "FAMILIES":          # every family module, imported (the old eager tuple)
        return tuple(family(f) for f in FAMILY_NAMES)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def all_ops() -> tuple[type[OpDef], ...]:
    """Every op class, in family order (imports every family)."""
    return tuple(op for name in FAMILY_NAMES for op in family(name).OPS)


@functools.cache
def _family_table(name: str) -> dict[str, type[OpDef]]:
    """Spelling -> op class for the ops of one family."""
    table: dict[str, type[OpDef]] = {}
    for op in family(name).OPS:
        for key in (op.name, op.__name__):
            if key in table and table[key] is not op:
                raise RuntimeError(f"two ops are named {key!r}: {table[key].__name__} and {op.__name__}")
            table[key] = op
    return table


def lookup(name: str) -> type[OpDef] | None:
    """The op class spelled ``name`` in a spec (``Conv2d`` or ``conv2d``), or None."""
    owner = _FAMILY_OF.get(name)
    return None if owner is None else _family_table(owner).get(name)


def op_class(name: str) -> type[OpDef]:
    """The op class for an IR op name; KeyError with a suggestion when unknown."""
    op = lookup(name) if isinstance(name, str) else None
    if op is None:
        close = difflib.get_close_matches(str(name), spellings(), n=1)
        raise KeyError(f"unknown op {name!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
    return op


def spellings() -> list[str]:
    """Every name an op can be written with."""
    return list(_FAMILY_OF)
