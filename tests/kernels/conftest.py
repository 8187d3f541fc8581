"""Kernel tests run the Triton kernels in the interpreter when there is no GPU (set before triton is imported)."""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
