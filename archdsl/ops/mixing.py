"""Op family 'mixing' (filled in by its owner)."""

from __future__ import annotations

OPS: tuple = ()
