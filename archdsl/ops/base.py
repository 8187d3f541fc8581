"""The op declaration contract: attribute schema, shape rule, parameters, properties, cost.

Every op is one subclass of :class:`OpDef`. Backends and passes refer to the class (and its
traits), never to a name string in an ``if`` chain.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict

from archdsl.errors import OpError
from archdsl.ir.dims import Dim
from archdsl.ir.types import TensorType


def _require_positive(v: int) -> int:
    if v <= 0:
        raise ValueError(f"must be positive, got {v}")
    return v


PositiveInt = Annotated[int, AfterValidator(_require_positive)]   # channels, groups, factors, heads ...


class Trait(enum.Enum):
    """Properties passes and symmetry checks query."""

    LINEAR = "linear"                    # f(a x + b y) = a f(x) + b f(y) in its tensor inputs (params fixed)
    AFFINE = "affine"                    # linear plus a constant (a bias)
    ELEMENTWISE = "elementwise"          # acts on each element independently
    HOMOGENEOUS = "homogeneous"          # f(a x) = a f(x) for a > 0 (relu-like)
    ODD = "odd"                          # f(-x) = -f(x) (tanh-like)
    TRAIN_EVAL = "train_eval"            # behaves differently in train and eval mode
    SHAPE_ONLY = "shape_only"            # moves or reshapes data, computes nothing
    STOCHASTIC = "stochastic"            # random in training mode
    CHANNEL_AFFINE = "channel_affine"    # in eval mode y = x * scale[c] + shift[c] on one axis: see ``eval_affine``
    EVAL_IDENTITY = "eval_identity"      # the identity in eval mode (dropout, stochastic depth)
    RECURRENT = "recurrent"              # carries a state along time (axis 1): has a step form (model.step)
    BUFFER = "buffer"                    # keeps its (build-time constant) input as a module buffer

    # members are singletons compared by identity: hash them so too, in C (Enum's own __hash__ is Python code,
    # and op.has(trait) runs several times per node in code generation and verification)
    __hash__ = object.__hash__


@dataclass(frozen=True)
class ParamSpec:
    """A parameter or buffer an op owns: shape, dtype, initialiser and the axis it varies along."""

    shape: tuple[Dim, ...]
    init: str                      # an archdsl.ir.init.Init: "kaiming_uniform(a=sqrt(5))", "zeros", "normal(std=0.02)"
    dtype: str = "float32"
    buffer: bool = False           # running stats and counters are buffers, not parameters
    axis: str = "none"             # broadcast axis tag: channel, feature, token, spatial, none
    fan_in: int | None = None      # for fan-based initialisers
    layout: tuple[str, ...] = ()   # role of each axis: "out", "in", "spatial", "channel" (() = untagged)
    groups: int = 1                # for "out"/"in" layouts: channel groups of a grouped convolution


# Axis roles of weight layouts; passes find the axis to scale by role, never by position.
OUT, IN, SPATIAL, CHANNEL = "out", "in", "spatial", "channel"


@dataclass(frozen=True)
class ConvForm:
    """How an op acts, in eval mode, as a convolution of a channels-first input [N, C, *spatial].

    Passes merge and fold ops through this description, never through the op's class. ``weight`` names the
    op's kernel parameter ([out, in/groups, *kernel]); without one every kernel entry of a channel's own
    input is ``constant`` (average pooling: 1/window; groups == channels).
    """

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    groups: int
    in_channels: int
    out_channels: int
    mode: str = "zeros"
    weight: str | None = "weight"
    bias: str | None = None
    constant: float = 1.0

    @property
    def spatial(self) -> int:
        """Number of spatial dims."""
        return len(self.kernel)


@dataclass(frozen=True)
class Cost:
    """Multiply-accumulates and activation elements of one application."""

    macs: Dim = 0
    activations: Dim = 0


class OpDef(BaseModel):
    """Base of every op declaration. Fields are the op's attributes (validated by pydantic)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    name: ClassVar[str]
    positional: ClassVar[tuple[str, ...]] = ()    # attribute names positional arguments bind to
    traits: ClassVar[frozenset[Trait]] = frozenset()
    arity: ClassVar[int | None] = 1                # tensor inputs; None = variadic (a list)
    num_outputs: ClassVar[int] = 1
    family: ClassVar[str] = "misc"                 # grouping for docs and stats
    # What to write instead when an input has the wrong rank (the hint of expect_rank's error); one place per op
    # class, None: a generic "reshape to rank N" hint.
    rank_hint: ClassVar[str | None] = None

    def resolve(self, inputs: list[TensorType]) -> OpDef:
        """Return the op with input-dependent attributes made explicit ('same' padding, ...)."""
        return self

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        """Output types for these input types; raise OpError when they do not fit."""
        raise OpError(f"{self.name} has no shape rule", "this op cannot be applied to tensors here; `archdsl ops` "
                      "lists the ops that can")

    def params(self, inputs: list[TensorType]) -> dict[str, ParamSpec]:
        """Parameters and buffers this op owns, keyed by their local (torch) name."""
        return {}

    def cost(self, inputs: list[TensorType], outputs: list[TensorType]) -> Cost:
        """MACs and activation elements; default: no MACs, outputs' elements."""
        acts: Dim = 0
        for t in outputs:
            acts = acts + t.numel()
        return Cost(macs=0, activations=acts)

    def conv_form(self, x: TensorType) -> ConvForm | None:
        """This op as a convolution of a channels-first ``x`` in eval mode, or None (most ops)."""
        return None

    def output_channel_axis(self, x: TensorType) -> int | None:
        """Axis of the output that the "out" axis of this op's weight produces (conv: 1, linear: last), or None."""
        return None

    def input_channel_axis(self, x: TensorType) -> int | None:
        """Axis of the input that the "in" axis of this op's weight reads (conv: 1, linear: last), or None."""
        return None

    def with_bias(self) -> OpDef | None:
        """The same op with a bias parameter (what a fold needs to absorb a shift), or None when it cannot have one."""
        return None

    def graph_propagation(self) -> int | None:
        """For ops computing ``linear(S^k X)`` from an adjacency S and features X (graph convolutions): k."""
        return None

    def scale_operands(self) -> tuple[tuple[int, int], ...]:
        """(input position, exponent) of operands that, when constant, scale the other input (a*b; a/b: b**-1)."""
        return ()

    def sum_coefficients(self, n: int) -> tuple[float, ...] | None:
        """For ops that are weighted sums of ``n`` same-typed inputs (add, add_n, sub): the weights; else None."""
        return None

    def eval_affine_axis(self, x: TensorType) -> int | None:
        """For CHANNEL_AFFINE ops: the axis the eval-mode scale and shift vary along, or None when not affine here."""
        return None

    def eval_affine(self, params: dict, x: TensorType) -> tuple[int, object, object]:
        """For CHANNEL_AFFINE ops: (axis, scale, shift) of the eval-mode map from its parameter tensors.

        ``params`` maps the op's local parameter names to tensors; scale and shift are 1-d tensors over
        the axis (or None for 1 and 0).
        """
        raise OpError(f"{self.name} is not a per-channel affine op", NOT_AFFINE_HINT)

    def has(self, trait: Trait) -> bool:
        """True when this op carries ``trait``."""
        return trait in self.traits

    def attrs(self) -> dict:
        """Attributes as plain data (for printing and JSON)."""
        return self.model_dump(mode="json")


# The hint of every "not a channel-affine map" error (eval_affine asked of an op or tensor it does not fit).
NOT_AFFINE_HINT = ("only ops with the channel_affine trait, on a tensor with a channel axis, fold into a neighbouring "
                   "conv or linear layer")


@functools.lru_cache(maxsize=1 << 17)    # 131072: a 100k-node graph's rules stay cached from elaboration to verify
def _rules(op: OpDef, types: tuple[TensorType, ...]) -> tuple[OpDef, tuple[TensorType, ...], tuple]:
    ins = list(types)
    resolved = op.resolve(ins)
    return resolved, tuple(resolved.infer(ins)), tuple(resolved.params(ins).items())


def rules_of(op: OpDef, types: list[TensorType]) -> tuple[OpDef, tuple[TensorType, ...], tuple[tuple[str, ParamSpec], ...]]:
    """:func:`apply_rules`' results as the memo holds them (read only: the same tuples for every equal op and input
    types, so a caller may key its own memos by their identity, as the elaborator's parameter plans do)."""
    key = tuple(types)
    try:
        return _rules(op, key)
    except TypeError:                 # an attribute that cannot be hashed (or a rule's own TypeError): uncached
        return _rules.__wrapped__(op, key)


def apply_rules(op: OpDef, types: list[TensorType]) -> tuple[OpDef, list[TensorType], dict[str, ParamSpec]]:
    """``resolve``, ``infer`` and ``params`` of ``op`` on ``types``, memoised.

    The rules are pure functions of the (immutable) op and input types, and deep networks apply the
    same op to the same types many times (ResNet-152's 36 identical blocks in one stage).
    """
    key = tuple(types)
    try:
        resolved, outs, params = _rules(op, key)
    except TypeError:                 # an attribute that cannot be hashed (or a rule's own TypeError): uncached
        resolved, outs, params = _rules.__wrapped__(op, key)
    return resolved, list(outs), dict(params)


def expect_rank(op: OpDef, t: TensorType, *ranks: int) -> None:
    """Raise OpError unless ``t`` has one of ``ranks`` axes."""
    if t.rank not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise OpError(f"{op.name} expects a tensor of rank {want}, got {t}",
                      op.rank_hint or f"reshape, flatten or unsqueeze the input to rank {want} first")


def norm_axis(op: OpDef, axis: int, rank: int) -> int:
    """Normalise a possibly negative axis, raising OpError when out of range."""
    if not -rank <= axis < rank:
        raise OpError(f"{op.name}: axis {axis} is out of range for rank {rank}",
                      f"axes of a rank-{rank} tensor run from 0 to {rank - 1} (or {-rank} to -1 from the end)"
                      if rank else "a scalar has no axes: reshape it to [1] first")
    return axis % rank
