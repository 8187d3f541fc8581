"""Where each symbolic size of a graph comes from: an axis of an input, or a pattern such as ``32*P`` on one.

Backends bind every symbol once, from the inputs' run-time shapes (the top of a generated ``forward``, a few
Shape/Sub/Div nodes in ONNX), so an op may use any expression in the symbols wherever its input came from:
``reshape((B, d, H, W))`` on a token sequence, ``slice(1, end=T)`` on a position table.
"""

from __future__ import annotations

from dataclasses import dataclass

from archdsl.ir.dims import Dim, SymDim, linear_form
from archdsl.ir.types import TensorType


@dataclass(frozen=True)
class SymbolSource:
    """Symbol = (size of axis ``axis`` of input ``input`` - ``offset``) // ``scale``."""

    input: str
    axis: int
    scale: int = 1
    offset: int = 0
    multiple: int = 1       # `where S % multiple == remainder`: the size itself, checked against the rule
    remainder: int = 0

    def formula(self, size: str) -> str:
        """Source text computing the symbol from ``size`` (source text of the axis size)."""
        if self.offset:
            size = f"({size} - {self.offset})" if self.offset > 0 else f"({size} + {-self.offset})"
        return size if self.scale == 1 else f"{size} // {self.scale}"


def symbol_sources(inputs: dict[str, TensorType]) -> dict[str, SymbolSource]:
    """For each symbol of the inputs, the first axis that determines it (a bare symbol wins over a pattern)."""
    found: dict[str, SymbolSource] = {}
    for name, t in inputs.items():
        for axis, d in enumerate(t.shape):
            rule = constrained_form(d)
            if rule is not None and rule[0] not in found:
                found[rule[0]] = SymbolSource(name, axis, multiple=rule[1], remainder=rule[2])
    for bare in (True, False):
        for name, t in inputs.items():
            for axis, d in enumerate(t.shape):
                form = linear_form(d)
                if form is None or (form[1:] == (1, 0)) != bare or form[0] in found:
                    continue
                found[form[0]] = SymbolSource(name, axis, form[1], form[2])
    return found


def constrained_form(d: Dim) -> tuple[str, int, int] | None:
    """``(S, k, r)`` when ``d`` is ``k*(S//k) + r``: the size ``S`` of an input declared ``where S % k == r``."""
    if isinstance(d, int):
        return None
    for name in d.symbols:
        sym = SymDim.symbol(name)
        for k in _divisors(d):
            r = d - k * (sym // k)
            if isinstance(r, int) and 0 <= r < k and d == k * (sym // k) + r:
                return name, k, r
    return None


def _divisors(d: SymDim) -> list[int]:
    """Candidate moduli: the coefficients of ``d``'s terms (``32`` in ``32*(H//32)``)."""
    return sorted({abs(c) for m, c in d._terms.items() if m and abs(c) > 1})


def underived(inputs: dict[str, TensorType]) -> list[str]:
    """Symbols of the inputs that no axis determines alone (``H`` and ``W`` when the only axis is ``H*W``)."""
    known = symbol_sources(inputs)
    out: list[str] = []
    for t in inputs.values():
        for d in t.shape:
            for s in sorted(getattr(d, "symbols", ())):
                if s not in known and s not in out:
                    out.append(s)
    return out


def pattern_note(a: int, b: int) -> str:
    """What the pattern ``a*S + b`` asks of a size: ``'a multiple of 32'``, ``'odd'``, ``'1 more than a multiple
    of 4'``."""
    if b % a == 0:
        return f"a multiple of {a}"
    return "odd" if a == 2 else f"{b % a} more than a multiple of {a}"


def pattern_text(d: Dim) -> str | None:
    """:func:`pattern_note` of a pattern dim (``32*P``); None for a bare symbol or ``H + 1``."""
    form = linear_form(d)
    return None if form is None or form[1] == 1 else pattern_note(form[1], form[2])


def sizes_near(inputs: dict[str, TensorType], side: int, batch: int = 1,
               lead: set[str] | None = None) -> dict[str, int]:
    """Values for the inputs' symbols that make each input axis about ``side`` long (``batch`` for the symbols
    ``lead``, by default those of leading axes): ``H -> side``, ``P -> side // 32`` for ``32*P`` (at least 1);
    symbols no axis determines get ``side``."""
    leading = lead if lead is not None else {str(t.shape[0]) for t in inputs.values()
                                             if t.rank and linear_form(t.shape[0]) is not None}
    out: dict[str, int] = {}
    for s, src in symbol_sources(inputs).items():
        out[s] = batch if s in leading else max(1, (side - src.offset) // src.scale)
        if src.multiple > 1:     # the nearest size the rule allows, at least one multiple
            out[s] = max(src.multiple, side - side % src.multiple) + src.remainder
    for s in underived(inputs):
        out[s] = side
    return out
