"""Torch lowerings of the 'gating' op family."""

from __future__ import annotations
