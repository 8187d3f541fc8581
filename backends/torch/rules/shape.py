"""Torch lowerings of the 'shape' op family."""

from __future__ import annotations
