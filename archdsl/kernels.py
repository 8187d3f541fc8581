"""Linear-attention kernels with flash-linear-attention's functional API (swap one import for the other).

``o, final_state = archdsl.kernels.gla(q, k, v, g, scale=None, initial_state=None, output_final_state=False,
cu_seqlens=None, mode="auto")`` on ``[B, T, H, D]`` tensors; CUDA tensors run the Triton kernels (when triton is
installed), CPU tensors the chunked PyTorch form. See :mod:`archdsl.backends.torch.kernels.api`.
"""

from archdsl.backends.torch.kernels.api import (
    MODES,
    delta_rule,
    gated_delta_rule,
    gla,
    lightning_attn,
    lightning_decay,
    linear_attn,
    retention,
    retention_decay,
    simple_gla,
    triton_available,
)

__all__ = ["MODES", "delta_rule", "gated_delta_rule", "gla", "lightning_attn", "lightning_decay", "linear_attn",
           "retention", "retention_decay", "simple_gla", "triton_available"]
