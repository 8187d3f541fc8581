"""Torch lowerings of the 'attention' op family."""

from __future__ import annotations
