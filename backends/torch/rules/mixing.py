"""Torch lowerings of the 'mixing' op family."""

from __future__ import annotations
