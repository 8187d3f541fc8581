"""Torch lowerings of the 'embed' op family."""

from __future__ import annotations
