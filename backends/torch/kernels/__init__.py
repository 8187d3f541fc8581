"""Linear-attention kernels: naive references, chunked PyTorch, recurrent (decoding) and Triton forms.

The public functions live in :mod:`archdsl.backends.torch.kernels.api` (re-exported as ``archdsl.kernels``).
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
