"""Torch lowerings of the 'resample' op family."""

from __future__ import annotations
