"""Linear-attention kernels: naive references, chunked PyTorch, recurrent (decoding) and Triton forms.

One sub-package per family (simple_gla: the scalar-gated family; gla; delta_rule); the public functions are in
:mod:`archdsl.backends.torch.kernels.api`, re-exported as ``archdsl.kernels``.
"""
