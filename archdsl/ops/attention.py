"""Op family 'attention' (filled in by its owner)."""

from __future__ import annotations

OPS: tuple = ()
