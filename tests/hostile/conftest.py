"""Fixtures of the hostile suite (helpers live in _hostile.py)."""

from _hostile import here  # noqa: F401  (a fixture)
