"""The linear-attention family on fla's layout ``[B, T, H, D]``: one declaration per op.

Inputs, in order: ``q, k, v``, the op's per-token gates (``g``, ``beta``), then ``initial_state`` [N, H, K, V]
when ``has_initial_state``, then ``cu_seqlens`` (int64 [N+1]) when ``varlen``. Outputs: ``o`` [B, T, H, V], and
the final state [N, H, K, V] (float32, float64 for float64 inputs) when ``output_final_state``. In a spec:
``o = (q, k, v, g) |> gla()``, ``o = gla((q, k, v, g))`` or ``o, s = (q, k, v, g) |> gla(output_final_state=true)``.

The math, written out as recurrences, is in ``backends/torch/kernels/{simple_gla,gla,delta_rule}/naive.py``; the
public fla-compatible functions are ``archdsl.kernels``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import ValidationInfo, field_validator

from archdsl.errors import OpError
from archdsl.ir.dims import Dim
from archdsl.ir.types import TensorType
from archdsl.ops.activation import FLOAT_DTYPES
from archdsl.ops.base import Cost, OpDef, ParamSpec, PositiveInt, Trait
from archdsl.ops.shape import product


def _dims(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


FeatureMap = Literal["identity", "elu1", "relu", "cosformer", "focused"]


class LinearAttentionOp(OpDef):
    """Shared contract of the family: inputs q, k, v, gates, [initial_state], [cu_seqlens]."""

    arity: ClassVar = None
    family: ClassVar = "linear_attention"
    traits: ClassVar = frozenset({Trait.RECURRENT})
    gates: ClassVar[tuple[tuple[str, str], ...]] = ()     # (input name, "head" [B,T,H] | "key" [B,T,H,K])
    bidirectional: ClassVar[bool] = True                  # has a causal=False form
    kernel: ClassVar[str]                                 # the archdsl.kernels function
    state_passes: ClassVar[int] = 2                       # K x V products per token and head (for cost)
    scale: float | None = None                            # None: 1/sqrt(K)
    causal: bool = True
    has_initial_state: bool = False
    output_final_state: bool = False
    varlen: bool = False

    @field_validator("causal")
    @classmethod
    def _has_bidirectional_form(cls, v: bool) -> bool:
        if not v and not cls.bidirectional:
            raise ValueError(f"{cls.name} is causal only")
        return v

    @field_validator("has_initial_state", "output_final_state")
    @classmethod
    def _state_needs_causal(cls, v: bool, info: ValidationInfo) -> bool:
        if v and info.data.get("causal") is False:
            raise ValueError("bidirectional attention (causal=false) has no recurrent state")
        return v

    @field_validator("scale")
    @classmethod
    def _finite_scale(cls, v: float | None) -> float | None:
        if v is not None and not (v == v and abs(v) < float("inf")):
            raise ValueError("must be a finite number")
        return v

    def input_names(self) -> list[str]:
        """Names of the tensor inputs this instance takes, in order."""
        names = ["q", "k", "v", *(name for name, _ in self.gates)]
        return names + ["initial_state"] * self.has_initial_state + ["cu_seqlens"] * self.varlen

    def state_size(self, k: Dim, v: Dim) -> tuple[Dim, Dim]:
        """(K, V) of the recurrent state for key size k and value size v."""
        return k, v

    def _check_qkv(self, byname: dict[str, TensorType]) -> tuple[TensorType, TensorType, TensorType]:
        q, k, v = byname["q"], byname["k"], byname["v"]
        for name in ("q", "k", "v"):
            t = byname[name]
            if t.rank != 4:
                raise OpError(f"{self.name}: {name} must be [B, T, H, D], got {t}",
                              hint="split the heads first: reshape((B, T, heads, -1))")
            if t.dtype not in FLOAT_DTYPES:
                raise OpError(f"{self.name}: {name} must be floating point, got {t}",
                              "q, k and v come from linear projections: declare integer ids through an Embedding")
        if q.shape != k.shape:
            raise OpError(f"{self.name}: q and k must have the same shape [B, T, H, K], got q {q} and k {k}",
                          "project q and k to the same heads and key size (num_heads * head_k_dim features)")
        if v.shape[:3] != q.shape[:3]:
            raise OpError(f"{self.name}: v must be [B, T, H, V] with q's B, T, H, got q {q} and v {v}",
                          hint="value heads must equal query/key heads; repeat q and k heads for GQA-style values")
        if not q.dtype == k.dtype == v.dtype:
            raise OpError(f"{self.name}: q, k, v need one dtype, got {q.dtype}, {k.dtype}, {v.dtype}",
                          "compute q, k and v with one dtype (from the same input)")
        return q, k, v

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        names = self.input_names()
        if len(inputs) != len(names):
            raise OpError(f"{self.name} takes {len(names)} tensors ({', '.join(names)}), got {len(inputs)}",
                          hint="has_initial_state=true adds an initial_state input, varlen=true a cu_seqlens input")
        byname = dict(zip(names, inputs, strict=True))
        q, k, v = self._check_qkv(byname)
        batch, _, heads, kd = q.shape
        for name, kind in self.gates:
            want = q.shape[:3] if kind == "head" else q.shape
            t = byname[name]
            if t.shape != tuple(want) or t.dtype not in FLOAT_DTYPES:
                layout = "[B, T, H]" if kind == "head" else "[B, T, H, K]"
                raise OpError(f"{self.name}: {name} must be a float {layout} = {_dims(want)}, got {t}",
                              f"compute {name} from the same input as q, with q's batch, length and heads "
                              f"({'one value per head' if kind == 'head' else 'one value per key feature'})")
        count: Dim = batch
        if self.varlen:
            cu = byname["cu_seqlens"]
            if cu.rank != 1 or cu.dtype not in ("int64", "int32"):
                raise OpError(f"{self.name}: cu_seqlens must be an integer vector [N+1], got {cu}",
                              "declare it as int64[N1] holding the sequences' start offsets and the total length")
            if isinstance(batch, int) and batch != 1:
                raise OpError(f"{self.name}: with varlen=true the sequences are packed along T of a batch of 1, "
                              f"got batch {batch} in q {q}", "declare the inputs with batch 1 ([1, T, ...]) and "
                              "concatenate the sequences along T, or use varlen=false for a padded batch")
            count = cu.shape[0] - 1
        sk, sv = self.state_size(kd, v.shape[3])
        state_type = TensorType(shape=(count, heads, sk, sv), dtype="float64" if q.dtype == "float64" else "float32")
        if self.has_initial_state:
            h0 = byname["initial_state"]
            if h0.shape != state_type.shape or h0.dtype not in FLOAT_DTYPES:
                raise OpError(f"{self.name}: initial_state must be [N, H, K, V] = {_dims(state_type.shape)}, "
                              f"got {h0}", "pass the final state of a previous call (one [H, K, V] state per "
                              "sequence), as float")
        out = [v]
        if self.output_final_state:
            out.append(state_type)
        return out

    def cost(self, inputs: list[TensorType], outputs: list[TensorType]) -> Cost:
        q, v = inputs[0], inputs[2]
        sk, sv = self.state_size(q.shape[3], v.shape[3])
        tokens = product(q.shape[:3])
        # per token and head: the state update k v^T and the read-out q^T S (the recurrent count)
        return Cost(macs=tokens * sk * sv * self.state_passes, activations=outputs[0].numel())

    def kernel_kwargs(self) -> dict:
        """Keyword arguments of the archdsl.kernels call (besides the tensors)."""
        return {"scale": self.scale, "causal": self.causal}


class LinearAttention(LinearAttentionOp):
    """Linear attention: phi(q)^T sum_s phi(k_s) v_s^T (Katharopoulos et al.), phi by ``feature_map``.

    ``feature_map``: identity, elu1 (elu + 1), relu, cosformer (cosFormer's cos/sin re-weighting; doubles K),
    focused (FLatten's norm-preserving power map, power ``focus_power``). ``normalize``: divide by
    phi(q) . sum phi(k) + eps (the state then carries the key sum as an extra value column: [N, H, K, V + 1]).
    A learnable map is a layer applied to q and k before this op (feature_map=identity).
    """

    name: ClassVar = "linear_attention"
    kernel: ClassVar = "linear_attn"
    feature_map: FeatureMap = "identity"
    normalize: bool = False
    eps: float = 1e-6
    focus_power: float = 3.0
    cosformer_len: PositiveInt | None = None

    @field_validator("eps", "focus_power")
    @classmethod
    def _positive(cls, v: float) -> float:
        if not v > 0:
            raise ValueError("must be positive")
        return v

    def state_size(self, k: Dim, v: Dim) -> tuple[Dim, Dim]:
        return (2 * k if self.feature_map == "cosformer" else k), (v + 1 if self.normalize else v)

    def kernel_kwargs(self) -> dict:
        out = super().kernel_kwargs() | {"normalize": self.normalize, "feature_map": self.feature_map,
                                         "eps": self.eps}
        if self.feature_map == "focused":
            out["focus_power"] = self.focus_power
        if self.feature_map == "cosformer" and self.cosformer_len is not None:
            out["cosformer_len"] = self.cosformer_len
        return out


class Retention(LinearAttentionOp):
    """RetNet's retention: S = gamma_h S + k v^T with the fixed decay gamma_h = 1 - 2^(-5-h) of head h."""

    name: ClassVar = "retention"
    kernel: ClassVar = "retention"


class LightningAttention(LinearAttentionOp):
    """Lightning Attention-2: a fixed per-head decay exp(-(8/H)(1 - layer_idx/num_layers) h) set by depth."""

    name: ClassVar = "lightning_attention"
    positional: ClassVar = ("layer_idx", "num_layers")
    kernel: ClassVar = "lightning_attn"
    layer_idx: int
    num_layers: PositiveInt

    @field_validator("num_layers")
    @classmethod
    def _layer_in_range(cls, v: int, info: ValidationInfo) -> int:
        layer = info.data.get("layer_idx")
        if layer is not None and not 0 <= layer < v:
            raise ValueError(f"layer_idx must be in [0, num_layers), got layer_idx={layer} of {v} layers")
        return v

    def kernel_kwargs(self) -> dict:
        return {"layer_idx": self.layer_idx, "num_layers": self.num_layers} | super().kernel_kwargs()


class SimpleGLA(LinearAttentionOp):
    """Simple GLA: S = exp(g_t) S + k v^T with a data-dependent scalar log-decay g [B, T, H] per head."""

    name: ClassVar = "simple_gla"
    kernel: ClassVar = "simple_gla"
    gates: ClassVar = (("g", "head"),)


class GLA(LinearAttentionOp):
    """Gated linear attention: S = diag(exp(g_t)) S + k v^T, a log-decay per key channel g [B, T, H, K]."""

    name: ClassVar = "gla"
    kernel: ClassVar = "gla"
    gates: ClassVar = (("g", "key"),)
    state_passes: ClassVar = 3


class DeltaRule(LinearAttentionOp):
    """DeltaNet: S = S + beta k (v - S^T k)^T, beta [B, T, H] in (0, 1); ``qk_l2norm`` normalises q and k."""

    name: ClassVar = "delta_rule"
    kernel: ClassVar = "delta_rule"
    gates: ClassVar[tuple[tuple[str, str], ...]] = (("beta", "head"),)
    bidirectional: ClassVar = False
    state_passes: ClassVar = 3
    qk_l2norm: bool = False

    def kernel_kwargs(self) -> dict:
        return {"scale": self.scale, "use_qk_l2norm_in_kernel": self.qk_l2norm}


class GatedDeltaRule(DeltaRule):
    """Gated DeltaNet: S = exp(g_t) (I - beta k k^T) S + beta k v^T; g (log-decay) and beta [B, T, H]."""

    name: ClassVar = "gated_delta_rule"
    kernel: ClassVar = "gated_delta_rule"
    gates: ClassVar = (("g", "head"), ("beta", "head"))


class Mamba2Decay(OpDef):
    """Mamba-2's (and Gated DeltaNet's) log-decay: -exp(A_log) * softplus(a + dt_bias); a [..., H], A_log, dt_bias [H].

    The result is <= 0 everywhere: a forgetting gate for simple_gla / gated_delta_rule.
    """

    name: ClassVar = "mamba2_decay"
    arity: ClassVar = 3
    family: ClassVar = "linear_attention"

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        a, a_log, dt_bias = inputs
        for name, t in zip(("a", "A_log", "dt_bias"), inputs, strict=True):
            if t.dtype not in FLOAT_DTYPES:
                raise OpError(f"mamba2_decay: {name} must be floating point, got {t}",
                              "a, A_log and dt_bias are float tensors (A_log and dt_bias usually Parameters)")
        if a.rank < 1 or a_log.shape != (a.shape[-1],) or dt_bias.shape != (a.shape[-1],):
            raise OpError(f"mamba2_decay: A_log and dt_bias must be [H] with H the last axis of a, got a {a}, "
                          f"A_log {a_log}, dt_bias {dt_bias}", "declare A_log and dt_bias as Parameter((H,)) with "
                          "H the number of heads, the last axis of a")
        return [a]

    def cost(self, inputs: list[TensorType], outputs: list[TensorType]) -> Cost:
        return Cost(macs=outputs[0].numel(), activations=outputs[0].numel())


class ShortConvolution(OpDef):
    """fla's ShortConvolution: a causal depthwise convolution over time on [B, T, C], then ``activation``.

    ``y[t, c] = act(sum_i weight[c, 0, i] x[t - K + 1 + i, c] (+ bias[c]))`` with zeros before the first token;
    weight [C, 1, K] (nn.Conv1d's layout, so fla's ``q_conv1d.weight`` loads by name). In decoding
    (``model.step``) the last K - 1 inputs are its state.
    """

    name: ClassVar = "short_conv"
    positional: ClassVar = ("kernel_size",)
    family: ClassVar = "linear_attention"
    traits: ClassVar = frozenset({Trait.RECURRENT})
    kernel_size: PositiveInt = 4
    activation: Literal["silu", "none"] = "silu"
    bias: bool = False

    def infer(self, inputs: list[TensorType]) -> list[TensorType]:
        x = inputs[0]
        if x.rank != 3 or x.dtype not in FLOAT_DTYPES:
            raise OpError(f"short_conv: x must be a float [B, T, C], got {x}",
                          hint="it runs before the heads are split: apply it to the projection's output")
        return [x]

    def params(self, inputs: list[TensorType]) -> dict[str, ParamSpec]:
        c = inputs[0].shape[2]
        out = {"weight": ParamSpec((c, 1, self.kernel_size), "kaiming_uniform(a=sqrt(5))", fan_in=self.kernel_size)}
        if self.bias:
            out["bias"] = ParamSpec((c,), "uniform(fan_in)", axis="channel", fan_in=self.kernel_size)
        return out

    def cost(self, inputs: list[TensorType], outputs: list[TensorType]) -> Cost:
        return Cost(macs=outputs[0].numel() * self.kernel_size, activations=outputs[0].numel())


OPS = (LinearAttention, Retention, LightningAttention, SimpleGLA, GLA, DeltaRule, GatedDeltaRule, Mamba2Decay,
       ShortConvolution)
