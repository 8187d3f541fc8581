"""Did-you-mean for an unknown name, drawn only from names of the kind its use calls for.

A bare name is a value (an input, a layer, a parameter, a constant) or an imported block; the layer of a pipe is
a value, an op or a block; a call on a tensor applies an op or a layer; a call with a capitalised name
constructs an op or a block; a lower-case call on numbers may also be a built-in function, and a built-in
suggested there says that it works on numbers, not tensors.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from archdsl.elaborate.builtins import BUILTINS
from archdsl.ops.registry import spellings

if TYPE_CHECKING:
    from archdsl.elaborate.scope import Scope

VALUE, BLOCK, OP, BUILTIN = "value", "block", "op", "built-in function"
CALL = "op, block or function"       # the ``what`` of an unknown callee (see Evaluator.call_expr)


def kinds_for(name: str, what: str, tensors: bool = False) -> tuple[str, ...]:
    """The kinds of thing an unknown ``name`` used as ``what`` (a call given ``tensors`` or not) can be."""
    if what == CALL and tensors:
        return (OP, VALUE)           # relu(x), layer(x): never a built-in function or a block's constructor
    if what == "name":
        return (VALUE, BLOCK)      # blocks: ``alias.Block`` looks its name up as a name
    if what != CALL:
        return (VALUE, BLOCK, OP)
    if name[:1].isupper():
        return (OP, BLOCK)
    return (OP, BUILTIN, VALUE, BLOCK)


def candidates(scope: Scope) -> dict[str, list[str]]:
    """Every visible name, by kind."""
    ns = scope.namespace
    visible = ns.visible_names()
    blocks = [n for n in visible if ns.find_block(n) is not None]
    return {VALUE: scope.local_names() + [n for n in visible if n not in set(blocks)], BLOCK: blocks,
            OP: spellings(), BUILTIN: list(BUILTINS)}


def suggestion(name: str, what: str, scope: Scope, tensors: bool = False) -> str | None:
    """``did you mean 'x'?`` from the kinds ``name`` may be in its use, or None when nothing is close."""
    by_kind = candidates(scope)
    pool: dict[str, str] = {}
    for kind in kinds_for(name, what, tensors):
        for candidate in by_kind[kind]:
            pool.setdefault(candidate, kind)
    close = difflib.get_close_matches(name, list(pool), n=1)
    if not close:
        return None
    if pool[close[0]] == BUILTIN:
        return f"did you mean the built-in function '{close[0]}'? (built-ins work on numbers and lists, not tensors)"
    return f"did you mean '{close[0]}'?"
