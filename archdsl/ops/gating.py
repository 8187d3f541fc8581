"""Op family 'gating' (filled in by its owner)."""

from __future__ import annotations

OPS: tuple = ()
