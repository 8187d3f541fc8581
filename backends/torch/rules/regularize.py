"""Torch lowerings of the 'regularize' op family."""

from __future__ import annotations
