"""Symbolic dimensions: integer polynomials over named sizes, with exact floor division.

A ``Dim`` is either a plain ``int`` or a :class:`SymDim`. Arithmetic is normalised to a canonical
polynomial so that structural equality is semantic equality for the cases shape rules produce:
``H*2//2 == H`` and ``(H-1)//2 + 1 == (H+1)//2``.
"""

from __future__ import annotations

import ast

# A monomial is a sorted tuple of atom keys; an atom is a symbol name or a floor-division term.
Monomial = tuple[str, ...]
Terms = dict[Monomial, int]


class SymDim:
    """An integer-valued polynomial in named symbols and opaque ``floor(p / k)`` atoms."""

    __slots__ = ("_terms", "_atoms", "_hash")

    def __init__(self, terms: Terms, atoms: dict[str, tuple[SymDim, int]] | None = None) -> None:
        self._terms = {m: c for m, c in terms.items() if c != 0}
        self._atoms = atoms or {}
        self._hash = hash(tuple(sorted(self._terms.items())))

    # -- construction -------------------------------------------------------------------------
    @staticmethod
    def symbol(name: str) -> SymDim:
        """The dimension named ``name`` (``N``, ``H``, ``T``)."""
        return SymDim({(name,): 1})

    @staticmethod
    def lift(x: Dim) -> SymDim:
        """View an int or SymDim as a SymDim."""
        return x if isinstance(x, SymDim) else SymDim({(): int(x)})

    def simplify(self) -> Dim:
        """Collapse to an ``int`` when the polynomial is constant."""
        if not self._terms:
            return 0
        if list(self._terms) == [()]:
            return self._terms[()]
        return self

    # -- queries ------------------------------------------------------------------------------
    @property
    def symbols(self) -> frozenset[str]:
        """Every named symbol this dimension depends on."""
        out: set[str] = set()
        for mono in self._terms:
            for atom in mono:
                if atom in self._atoms:
                    out |= self._atoms[atom][0].symbols
                else:
                    out.add(atom)
        return frozenset(out)

    def evaluate(self, env: dict[str, int]) -> int:
        """The integer value of this dimension once every symbol is bound in ``env``."""
        total = 0
        for mono, coef in self._terms.items():
            prod = coef
            for atom in mono:
                if atom in self._atoms:
                    inner, k = self._atoms[atom]
                    prod *= inner.evaluate(env) // k
                else:
                    if atom not in env:
                        raise KeyError(atom)
                    prod *= env[atom]
            total += prod
        return total

    # -- arithmetic -----------------------------------------------------------------------------
    def _combine(self, other: SymDim, sign: int) -> SymDim:
        terms = dict(self._terms)
        for m, c in other._terms.items():
            terms[m] = terms.get(m, 0) + sign * c
        return SymDim(terms, {**self._atoms, **other._atoms})

    def __add__(self, other: Dim) -> Dim:
        return self._combine(SymDim.lift(other), 1).simplify()

    __radd__ = __add__

    def __sub__(self, other: Dim) -> Dim:
        return self._combine(SymDim.lift(other), -1).simplify()

    def __rsub__(self, other: Dim) -> Dim:
        return SymDim.lift(other)._combine(self, -1).simplify()

    def __neg__(self) -> Dim:
        return SymDim({m: -c for m, c in self._terms.items()}, self._atoms).simplify()

    def __mul__(self, other: Dim) -> Dim:
        o = SymDim.lift(other)
        terms: Terms = {}
        for m1, c1 in self._terms.items():
            for m2, c2 in o._terms.items():
                m = tuple(sorted(m1 + m2))
                terms[m] = terms.get(m, 0) + c1 * c2
        return SymDim(terms, {**self._atoms, **o._atoms}).simplify()

    __rmul__ = __mul__

    def __floordiv__(self, other: Dim) -> Dim:
        if isinstance(other, SymDim) or other == 0:
            raise ZeroDivisionError("a dimension can only be divided by a non-zero integer")
        k = int(other)
        if k < 0:
            return (-self) // (-k)
        quotient: Terms = {}
        remainder: Terms = {}
        for m, c in self._terms.items():
            quotient[m] = c // k
            remainder[m] = c % k
        q = SymDim(quotient, self._atoms)
        r = SymDim(remainder, self._atoms).simplify()
        if isinstance(r, int):
            return q + r // k
        nested = r._nested_floordiv()
        if nested is not None:   # floor((floor(p/m) + c) / k) == floor((p + c*m) / (m*k))
            inner_poly, mod, c = nested
            return q + (inner_poly + c * mod) // (mod * k)
        inner = f"({r})" if len(r._terms) > 1 else str(r)
        key = f"({inner}//{k})"
        atom = SymDim({(key,): 1}, {**self._atoms, key: (r, k)})
        return q + atom

    def _nested_floordiv(self) -> tuple[SymDim, int, int] | None:
        """(p, m, c) when this is exactly ``p//m + c`` for a floor-division atom, else None."""
        variable = [mono for mono in self._terms if mono]
        if len(variable) != 1 or len(variable[0]) != 1 or self._terms[variable[0]] != 1:
            return None
        atom = self._atoms.get(variable[0][0])
        if atom is None:
            return None
        return atom[0], atom[1], self._terms.get((), 0)

    def __rfloordiv__(self, other: Dim) -> Dim:
        raise ZeroDivisionError("a dimension can only be divided by a non-zero integer")

    def __mod__(self, other: Dim) -> Dim:
        return self - (self // other) * other

    # -- comparison ------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if isinstance(other, (int, SymDim)):
            return self._terms == SymDim.lift(other)._terms
        return NotImplemented

    def __hash__(self) -> int:
        return self._hash

    # -- printing ------------------------------------------------------------------------------
    def __str__(self) -> str:
        parts: list[str] = []
        for mono in sorted(self._terms, key=lambda m: (len(m) == 0, m)):
            coef = self._terms[mono]
            body = "*".join(mono)
            if not mono:
                text = str(abs(coef))
            elif abs(coef) == 1:
                text = body
            else:
                text = f"{abs(coef)}*{body}"
            if not parts:
                parts.append(text if coef > 0 else f"-{text}")
            else:
                parts.append(f" + {text}" if coef > 0 else f" - {text}")
        return "".join(parts) or "0"

    def __repr__(self) -> str:
        return f"Dim({self})"

    def compact(self) -> str:
        """A short form for tables: ``N·(9.41K·⌈H/2⌉·⌈W/2⌉ + 512K)``: SI coefficients, ⌈⌉/⌊⌋ for divisions,
        and a factor every term shares taken out front."""
        several = len(self._terms) > 1
        common = set.intersection(*(set(m) for m in self._terms)) if several else set()
        terms = []
        for mono in sorted(self._terms, key=lambda m: (-len(m), m)):
            factors = [self._atom_text(a) for a in sorted(mono, key=self._symbols_first) if a not in common]
            coef = self._terms[mono]
            head = [] if abs(coef) == 1 and factors else [_si(abs(coef))]
            terms.append(("-" if coef < 0 else "+", "·".join(head + factors)))
        body = " ".join(f"{sign} {text}" for sign, text in terms).lstrip("+ ")
        body = "-" + body[2:] if body.startswith("- ") else body
        if not common:
            return body
        return "·".join(self._atom_text(a) for a in sorted(common, key=self._symbols_first)) + f"·({body})"

    def _symbols_first(self, atom: str) -> tuple[bool, str]:
        return (atom in self._atoms, atom)

    def _atom_text(self, atom: str) -> str:
        """``((H + 1)//2)`` -> ``⌈H/2⌉``; ``(H//2)`` -> ``⌊H/2⌋``; a symbol as itself."""
        if atom not in self._atoms:
            return atom
        inner, k = self._atoms[atom]
        up = SymDim.lift(inner - (k - 1))
        if (k - 1) and up.symbols and len(up._terms) == 1 and () not in up._terms:
            return f"⌈{up.compact()}/{k}⌉"
        text = SymDim.lift(inner).compact()
        return f"⌊{text}/{k}⌋" if len(SymDim.lift(inner)._terms) == 1 else f"⌊({text})/{k}⌋"


Dim = int | SymDim


def _si(n: int) -> str:
    """``9408`` -> ``9.41K``: three significant digits for counts in a formula."""
    for unit, scale in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
}


def parse_dim(text: str | int) -> Dim:
    """Parse the printed form of a dimension (``"2*H + 1"``, ``"(H + 1)//2"``); never evaluates code."""
    if isinstance(text, int):
        return text
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"not a dimension: {text!r}") from exc
    return _dim_from_ast(tree, text)


def _dim_from_ast(node: ast.AST, text: str) -> Dim:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name):
        return SymDim.symbol(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_dim_from_ast(node.operand, text)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_dim_from_ast(node.left, text), _dim_from_ast(node.right, text))
    raise ValueError(f"not a dimension: {text!r}")


def linear_form(d: Dim) -> tuple[str, int, int] | None:
    """``(S, a, b)`` when ``d`` is ``a*S + b`` for one symbol ``S`` and ``a > 0`` (``32*P``, ``2*H + 1``), else None.

    Such a size determines its symbol: ``S = (size - b) // a``, exact when ``size % a == b % a``.
    """
    if isinstance(d, int):
        return None
    variable = [(m, c) for m, c in d._terms.items() if m]
    if len(variable) != 1:
        return None
    (mono, coef), = variable
    if len(mono) != 1 or mono[0] in d._atoms or coef <= 0:
        return None
    return mono[0], coef, d._terms.get((), 0)


class Ratio:
    """``num / den`` of a symbolic size that does not divide exactly (``H / 2``): only ``ceil`` and ``floor``
    (or ``//``) turn it back into a size, so ``ceil(H / 2)`` is ``(H + 1)//2`` and ``ceil(32*P / 2)`` is ``16*P``."""

    __slots__ = ("num", "den")

    def __init__(self, num: SymDim, den: int) -> None:
        self.num, self.den = num, den

    def floor(self) -> Dim:
        """The largest size at most the ratio."""
        return self.num // self.den

    def ceil(self) -> Dim:
        """The smallest size at least the ratio."""
        return (self.num + self.den - 1) // self.den

    def __str__(self) -> str:
        return f"{self.num} / {self.den}"

    def __repr__(self) -> str:
        return f"{self} (not a whole size: write ceil(...), floor(...) or //)"


def divide_exactly(a: Dim, b: Dim) -> Dim | None:
    """``a / b`` when ``b`` is a monomial (``4*h*w``, ``h`` and ``w`` atoms or symbols) dividing every term of
    ``a`` exactly, else None; ``4*N*h*w / (4*h*w) == N``."""
    if a == b:
        return 1
    sa, sb = SymDim.lift(a), SymDim.lift(b)
    if len(sb._terms) != 1:
        return None
    (mono, coef), = sb._terms.items()
    if coef == 0:
        return None
    out: Terms = {}
    for m, c in sa._terms.items():
        rest = list(m)
        for atom in mono:
            if atom not in rest:
                return None
            rest.remove(atom)
        if c % coef:
            return None
        out[tuple(rest)] = c // coef
    return SymDim(out, {**sa._atoms}).simplify()
