"""Inputs and comparisons shared by the kernel tests: cases of the public API, relative errors, gradients."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from archdsl import kernels


def rel(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||ref - out|| / ||ref|| (in float64)."""
    ref, out = ref.double(), out.double()
    return ((ref - out).norm() / ref.norm().clamp(min=1e-300)).item()


@dataclass(frozen=True)
class Case:
    """One public function with fixed options; ``gates`` names its extra [B, T, H(, K)] inputs."""

    name: str
    fn: str
    gates: tuple[str, ...] = ()
    kwargs: dict = field(default_factory=dict)
    bidirectional: bool = True
    state_k: int = 1            # state K = state_k * K (cosFormer doubles it)
    state_v_extra: int = 0      # normaliser column

    def inputs(self, b: int, t: int, h: int, d: int, dtype: torch.dtype, seed: int = 0) -> dict[str, torch.Tensor]:
        """q, k, v, the gates and an initial state, as leaf tensors."""
        gen = torch.Generator().manual_seed(seed)

        def randn(*shape):
            return torch.randn(*shape, generator=gen, dtype=torch.float64)

        out = {"q": randn(b, t, h, d), "k": randn(b, t, h, d), "v": randn(b, t, h, d)}
        if self.fn.startswith("delta") or self.fn.startswith("gated_delta"):
            out["k"] = F.normalize(out["k"], dim=-1)
        for gate in self.gates:
            if gate == "g" and self.fn == "gla":
                out["g"] = F.logsigmoid(randn(b, t, h, d)) / 4
            elif gate == "g":
                out["g"] = F.logsigmoid(randn(b, t, h) + 2)
            elif gate == "beta":
                out["beta"] = torch.sigmoid(randn(b, t, h))
        out["initial_state"] = randn(b, h, d * self.state_k, d + self.state_v_extra)
        return {k: v.to(dtype).requires_grad_() for k, v in out.items()}

    def run(self, x: dict[str, torch.Tensor], mode: str, causal: bool = True, state: bool = True,
            cu_seqlens: torch.Tensor | None = None):
        """(o, final_state) of this case on ``x``."""
        kwargs = dict(self.kwargs)
        if not causal:
            kwargs["causal"] = False
        h0 = x["initial_state"] if state and causal else None
        return getattr(kernels, self.fn)(x["q"], x["k"], x["v"], *(x[g] for g in self.gates), initial_state=h0,
                                         output_final_state=state and causal, cu_seqlens=cu_seqlens, mode=mode,
                                         **kwargs)


CASES = [
    Case("linear_attn-identity", "linear_attn", kwargs={"normalize": False}),
    Case("linear_attn-elu1-norm", "linear_attn", kwargs={"feature_map": "elu1", "normalize": True},
         state_v_extra=1),
    Case("linear_attn-relu", "linear_attn", kwargs={"feature_map": "relu", "normalize": False}),
    Case("linear_attn-cosformer-norm", "linear_attn", kwargs={"feature_map": "cosformer", "normalize": True,
                                                             "cosformer_len": 128}, state_k=2, state_v_extra=1),
    Case("linear_attn-focused", "linear_attn", kwargs={"feature_map": "focused", "normalize": False}),
    Case("retention", "retention"),
    Case("lightning", "lightning_attn", kwargs={"layer_idx": 1, "num_layers": 4}),
    Case("simple_gla", "simple_gla", ("g",)),
    Case("gla", "gla", ("g",)),
    Case("delta_rule", "delta_rule", ("beta",), bidirectional=False),
    Case("delta_rule-l2", "delta_rule", ("beta",), kwargs={"use_qk_l2norm_in_kernel": True}, bidirectional=False),
    Case("gated_delta_rule", "gated_delta_rule", ("g", "beta"), bidirectional=False),
]
CASE_IDS = [c.name for c in CASES]


def loss_and_grads(x: dict[str, torch.Tensor], o: torch.Tensor, state: torch.Tensor | None, seed: int = 1):
    """Gradients of a random linear function of (o, state) with respect to every input that took part."""
    gen = torch.Generator().manual_seed(seed)
    loss = (o.double() * torch.randn(o.shape, generator=gen, dtype=torch.float64)).sum()
    if state is not None:
        loss = loss + (state.double() * torch.randn(state.shape, generator=gen, dtype=torch.float64)).sum()
    leaves = {k: v for k, v in x.items() if v.requires_grad}
    grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    return {k: g for k, g in zip(leaves, grads, strict=True) if g is not None}
