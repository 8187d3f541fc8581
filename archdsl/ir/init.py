"""Initialisers as typed declarations: ``Init.parse("normal(std=0.02)")``, checked once, printed back the same.

Every initialiser the IR emits is one of these: an op's ParamSpec (``kaiming_uniform(a=sqrt(5))``,
``uniform(fan_in)``: PyTorch's defaults for conv and linear layers), a free ``Parameter``'s argument, or a
constant. Backends interpret the declaration (the torch runtime: ``new_tensor``); nothing re-parses strings.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# kind -> keyword arguments it takes
KINDS: dict[str, tuple[str, ...]] = {
    "zeros": (), "ones": (), "constant": ("value",), "normal": ("mean", "std"),
    "trunc_normal": ("mean", "std", "a", "b"), "uniform": ("a", "b", "bound", "fan_in"),
    "kaiming_uniform": ("a",), "xavier_uniform": ("gain",),
    "computed": (),          # a persistent Buffer: the value of the expression it keeps (made at build time)
}
_SYNTAX = re.compile(r"(\w+)(?:\((.*)\))?$")
_SQRT = re.compile(r"sqrt\(([0-9.eE+-]+)\)$")
_FLOAT32_MAX = 3.4028234663852886e38


@dataclass(frozen=True)
class Init:
    """One initialiser: its kind and keyword arguments (``uniform(fan_in)`` is ``fan_in=1``)."""

    kind: str
    args: tuple[tuple[str, float], ...] = ()

    def get(self, key: str, default: float) -> float:
        """An argument, or ``default``."""
        return dict(self.args).get(key, default)

    def __contains__(self, key: str) -> bool:
        return key in dict(self.args)

    def __str__(self) -> str:
        if not self.args:
            return self.kind
        parts = []
        for k, v in self.args:
            if k == "fan_in":
                parts.append("fan_in")
            elif self.kind == "kaiming_uniform" and v == math.sqrt(5):
                parts.append("a=sqrt(5)")
            else:
                parts.append(f"{k}={v!r}")
        return f"{self.kind}({', '.join(parts)})"

    @classmethod
    def parse(cls, text: str) -> Init:
        """The declaration written ``text``; ValueError naming the accepted forms."""
        match = _SYNTAX.match(text.strip())
        if match is None or match.group(1) not in KINDS:
            raise ValueError(f"unknown initialiser {text!r}; use one of: {', '.join(KINDS)}, e.g. 'normal(std=0.02)'")
        kind, body = match.group(1), match.group(2) or ""
        args: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in body.split(","))):
            key, eq, value = (s.strip() for s in part.partition("="))
            if key == "fan_in" and not eq and kind == "uniform":
                args["fan_in"] = 1.0
                continue
            if not eq or key not in KINDS[kind]:
                raise ValueError(f"{kind} takes keyword arguments {', '.join(KINDS[kind]) or '(none)'}, got {part!r}")
            args[key] = _number(kind, key, value)
        _check_values(kind, args)
        return cls(kind, tuple(args.items()))


def _number(kind: str, key: str, text: str) -> float:
    root = _SQRT.match(text)
    try:
        number = math.sqrt(float(root.group(1))) if root else float(text)
    except ValueError:
        raise ValueError(f"{kind}: {key} must be a number, got {text!r}") from None
    if not abs(number) <= _FLOAT32_MAX:
        raise ValueError(f"{kind}: {key} must be a finite float32 number, got {text}")
    return number


def _check_values(kind: str, v: dict[str, float]) -> None:
    """The ranges the initialisers need: std >= 0 (> 0 when truncated), a <= b (a < b when truncated)."""
    if kind in ("normal", "trunc_normal") and v.get("std", 1.0) < 0:
        raise ValueError(f"{kind}: std must not be negative, got {v['std']:g}")
    if kind == "trunc_normal":
        std = v.get("std", 1.0)
        if std == 0:
            raise ValueError("trunc_normal: std must be positive")
        a, b = v.get("a", -2 * std), v.get("b", 2 * std)
        if not a < b:
            raise ValueError(f"trunc_normal: the range a={a:g} .. b={b:g} is empty")
    if kind == "uniform":
        if v.get("bound", 0.0) < 0:
            raise ValueError(f"uniform: bound must not be negative, got {v['bound']:g}")
        if "a" in v and "b" in v and v["a"] > v["b"]:
            raise ValueError(f"uniform: a={v['a']:g} is greater than b={v['b']:g}")
        if ("a" in v) != ("b" in v) and (v.get("a", 0.0) > 0 or v.get("b", 0.0) < 0):
            raise ValueError("uniform: with a one-sided range the other end is the default bound; give both a and b")
