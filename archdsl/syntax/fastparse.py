"""The lean parser for well-formed .arch text: recursive descent over one bulk scan, the same syntax tree as lark.

lark's LALR front end builds a Token object for every token and a parse Tree with position metadata for every
rule, then walks that tree again to make the syntax tree: about 20 µs per token on a large spec. This parser
reads the grammar (``grammar/arch.lark``) by hand, at about 1 µs per token:

- one scan of the text (``Scan``): a regular expression made of lark's terminals in lark's order (so a token
  is the one lark's root lexer takes), comments and white space skipped; per token its text (one object per
  distinct text) and the packed line and column of its start, in an array (no object per token). A rule's
  span (``ast.pack``) is made from its first and last tokens' when its node is built. Comments are found by a
  second expression, only when the text has a ``#``;
- a recursive-descent parser with precedence climbing for the expression levels, which calls the
  ``parser._LeanToAst`` methods with the children lark's tree would give them (its child filter, with None
  for an absent ``[optional]``) and the rule's span (first token to last token of everything the rule
  matched, as lark's ``propagate_positions``), so the nodes are those of the lark path;
- keywords: lark's contextual lexer reads a keyword's word as the keyword where its LALR state accepts that
  keyword, else as a name. This parser reads it as the keyword wherever it expects that keyword (a valid
  continuation, so one the state accepts), and as a name where lark's state accepts only what may follow there:
  after ``.``, ``let``, ``as``, ``in``, ``for``, a block's kind, in parameter lists, types, comprehension targets,
  ``seq {}`` keys and ``reparam {}`` labels after ``{`` or ``;``, and where an expression starts (except the
  words that start one: ``not`` where a not_test may start, ``true`` ... ``reparam``). A keyword's word as a
  statement's first target (where it may continue the statement before) is left to lark;
- the nesting limits: the text is cut at top-level items that start on a fresh line (where
  ``parser._check_nesting``'s estimate starts afresh); a stretch of 150 tokens or fewer cannot exceed them (at
  most 3 per token, against 450). On a longer one the estimate is computed on the tokens (``_shallow``: each
  token weighs at least what the estimate's own scan gives it, so this never says less), and only where that
  exceeds a limit is the stretch given to ``_check_nesting``'s own test (``nesting``).

It handles well-formed input only: on anything else (a syntax error, a bad ``kind``, a keyword read as a name,
a grammar this parser was not written for) it raises Unsupported, and the caller parses again with lark, whose
errors and messages are the reference (``parser._parse_rule``). tests/syntax/test_lean_driver.py checks the
scanner, the keywords and the trees against lark, and that this never accepts what lark refuses.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import re
from array import array
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from archdsl.syntax.ast import MAX_POSITION, NO_TRIVIA


class Unsupported(Exception):
    """Input the lean parser does not handle (any error): the caller falls back to lark."""


# The grammar this parser was written for (grammar/arch.lark); with any other, lark parses everything.
GRAMMAR_SHA256 = "19370abb1c6cf59cd8ad8e87ad8fe63d55941424d54b1be66fd0883e86f8a1e8"


@functools.cache
def written_for_grammar() -> bool:
    """Whether ``grammar/arch.lark`` is the grammar this parser reads (tests/syntax/test_lean_driver.py)."""
    from archdsl.syntax.tables import grammar_text

    return hashlib.sha256(grammar_text().encode("utf-8")).hexdigest() == GRAMMAR_SHA256


# lark's terminals, ordered so that the commonest come first where that changes no token (the alternatives that
# can match at the same place keep lark's order: NUMBER's ``.5`` before ``...`` before ``.``, ``**`` before
# ``*``, two-character operators before one), any other character last. White space (WS) and comments (COMMENT)
# are skipped possessively: those before the first token (``_LEAD``), then those after each token, in its match
# (so a match starts where its token starts). After them the next character starts a token (any character but
# white space and ``#`` does), so no character is ever skipped and the search never retries in vain.
_TOKEN = (r"""[A-Za-z_][A-Za-z0-9_]*|[(),\[\]{}:;]|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?"""
          r"""|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|\*\*|\.\.\.|==|!=|<=|>=|//|\|>|[<>*/%@+\-.=]|[^ \t\f\r\n]""")
_LEAD = re.compile(r"(?:[ \t\f\r\n]++|#[^\n]*+)*+").match
_SCAN = re.compile(rf"({_TOKEN})(?:[ \t\f\r\n]++|#[^\n]*+)*+").finditer
_COMMENTS = re.compile(r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|(#[^\n]*)""").finditer
# the grammar's keywords (tests/syntax/test_lean_driver.py checks them against lark's; not imported from the
# printer, whose import costs a command that only parses ~3 ms)
KEYWORDS = frozenset({"and", "as", "else", "false", "for", "if", "import", "in", "let", "none", "not", "or", "out",
                      "reparam", "seq", "true", "where"})
_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NUMBER_STARTS = frozenset("0123456789.")
_QUOTES = frozenset("\"'")
_BITS = 23
_MASK = (1 << _BITS) - 1
_FEW = 150                       # tokens in a stretch that cannot exceed the nesting limits (see the docstring)
MAX_NESTING, MAX_CHAIN = 200, 450   # parser._check_nesting's limits (tests/syntax/test_lean_driver.py)
# per token, its weight in the nesting estimate of parser._chain_depth: an opening bracket (a negative code: its
# weight, -3 for a parenthesis), a closing one (0), a comma (1: the count restarts), or an operator's weight (2 +
# the operators its text holds for that scan: ``...`` is three, a number ``.5`` one)
_OPEN, _SHUT, _COMMA = -1, 0, 1
_WEIGHTS = {"(": -3, "[": -2, "{": -2, ")": _SHUT, "]": _SHUT, "}": _SHUT, ",": _COMMA, "...": 2 + 3,
            **dict.fromkeys(["**", "|>", "//", "==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "@", ".",
                             "and", "or", "not", "if", "else"], 2 + 1)}

# expression levels, loosest first: the grammar's or_test ... postfix
_OR, _AND, _NOT, _CMP, _ADD, _MUL, _NEG, _POW, _PIPE, _POST = range(1, 11)
_TRAILER = _POST + 1
# what may follow an operand: a postfix trailer, or a binary operator (its level); any other token ends it
_FOLLOW = {"(": _TRAILER, "[": _TRAILER, ".": _TRAILER, "or": _OR, "and": _AND,
           "==": _CMP, "!=": _CMP, "<=": _CMP, ">=": _CMP, "<": _CMP, ">": _CMP, "+": _ADD, "-": _ADD,
           "//": _MUL, "*": _MUL, "/": _MUL, "%": _MUL, "@": _MUL, "**": _POW, "|>": _PIPE}
_CLOSE = frozenset({",", ")", "]", "}"})         # tokens that end an expression (one that no operand continues)
# keywords that start an expression; the others are names where an expression starts (lark's state there accepts
# only what may start one, so its contextual lexer reads them as names), and so is ``not`` where no not_test may
_EXPRESSION_WORDS = frozenset({"not", "true", "false", "none", "seq", "reparam"})
_KEYWORD_NAMES = KEYWORDS - _EXPRESSION_WORDS


class Scan:
    """A text's tokens: ``values``, one object per distinct text, three None after the last;
    ``starts``, the packed line and column (``line << 23 | column``) of each token's first character, in an
    array (no int object per token; a token is on one line, so it ends at ``start + len(value)``);
    ``line_starts``, the offset of each line, then one past the end; the distinct ``names`` (words that are
    no keyword), ``numbers`` and ``strings``."""

    __slots__ = ("values", "starts", "line_starts", "names", "numbers", "strings")

    def __init__(self, text: str):
        # line k (from 0) starts at offset line_starts[k]; then one past the end
        line_starts = array("q", accumulate(map((1).__add__, map(len, text.split("\n"))), initial=0))
        values: list[Any] = []
        starts = array("q")
        seen: dict[str, str] = {}
        value, first, same = values.append, starts.append, seen.setdefault
        k, following, at = 0, line_starts[1], (1 << _BITS) + 1      # at: the packed position of the line's offset 0
        lead = _LEAD(text)                            # white space and comments before the first token
        for m in _SCAN(text, lead.end() if lead else 0):
            start = m.start()
            if start >= following:                    # on a later line
                k += 1
                while line_starts[k + 1] <= start:
                    k += 1
                following, at = line_starts[k + 1], ((k + 1) << _BITS) + 1 - line_starts[k]
            v = m[1]
            value(same(v, v))                         # one object per distinct text
            first(at + start)
        names, numbers, strings = set(), set(), set()
        for v in seen:
            c = v[0]
            if c in _LETTERS:
                if v not in KEYWORDS:
                    names.add(v)
            elif c in _NUMBER_STARTS and v != "." and v != "...":
                numbers.add(v)
            elif c in _QUOTES:
                if len(v) == 1:
                    raise Unsupported("an unclosed string")
                strings.add(v)
        values += (None, None, None)
        self.values, self.starts, self.line_starts = values, starts, line_starts
        self.names, self.numbers, self.strings = names, numbers, strings

    def offset(self, position: int) -> int:
        """The offset of a packed position (``line << 23 | column``)."""
        return self.line_starts[(position >> _BITS) - 1] + (position & _MASK) - 1


def _shallow(values: list, starts: Any, first: int, stop: int) -> bool:
    """Whether ``parser._check_nesting``'s estimate stays within its limits on tokens ``first`` to ``stop`` (a
    stretch where the estimate starts afresh), computed as ``_chain_depth`` computes it but on these tokens; it
    is never lower than ``_chain_depth``'s (a token weighs at least as much), so True means that accepts too."""
    counts, braces = [0], [True]            # per open bracket (the first: the file, a brace): its count
    total, line = 0, starts[first] >> _BITS
    for k in range(first, stop):
        if braces[-1] and starts[k] >> _BITS != line:       # a line break inside braces: the count restarts
            total -= counts[-1]
            counts[-1] = 0
        line = starts[k] >> _BITS
        v = values[k]
        code = _WEIGHTS.get(v)
        if code is None:
            if v[0] != ".":                 # names, strings, numbers (``.5``: an operator for that scan)
                continue
            code = 3
        if code > _COMMA:
            counts[-1] += code - 2
            total += code - 2
        elif code < 0:
            counts[-1] -= code
            total -= code
            counts.append(0)
            braces.append(v == "{")
            if len(counts) > MAX_NESTING + 1:
                return False
        elif code == _COMMA:
            total -= counts[-1]
            counts[-1] = 0
        elif len(counts) > 1:
            total -= counts.pop()
            braces.pop()
        if total > MAX_CHAIN:
            return False
    return True


def comments_of(text: str, line_starts: Any, comment: Callable[[int, int, str], Any]) -> list:
    """The comments of ``text`` (outside string literals), as ``comment(line, column, text)``."""
    found = []
    if "#" in text:
        for m in _COMMENTS(text):
            if m[1] is not None:
                start = m.start(1)
                k = bisect.bisect_right(line_starts, start) - 1
                found.append(comment(k + 1, start - line_starts[k] + 1, m[1].rstrip()))
    return found


def parse(text: str, rule: str, tr: Any, comments: list, comment: Callable[[int, int, str], Any],  # noqa: C901, PLR0915 - one parser
          nesting: Callable[[str], bool] | None = None) -> Any:
    """Parse ``text`` from grammar rule ``rule`` (``start``, ``expr``, ``tensor_type`` or ``type_name``) and
    build the syntax tree with ``tr`` (a ``parser._LeanToAst``).

    Each transformer method is called as ``method(tr, here, children)``: ``here`` is the rule's packed span
    (``ast.pack``, with the base ``tr.base``; None for the rules in ``tr.SPANLESS``); tokens among the
    children are plain strings (one object per distinct text); ``block_def`` gets its parts (see
    ``parser._LeanToAst.block_def``). The commonest nodes (names, pipes, binary operators, calls, statements,
    types) are made at once from their fields by ``tr.make_*``. Comments are appended to ``comments`` as ``comment(line,
    column, text)``. ``nesting(stretch)`` says whether ``parser._check_nesting`` refuses a stretch of the text;
    where it does, raises Unsupported. Raises Unsupported on any error."""
    if not written_for_grammar():
        raise Unsupported("the grammar is not the one this parser reads")
    if len(text) >= MAX_POSITION:
        raise Unsupported("text too long for packed spans")
    scan = Scan(text)
    V, S, line_starts = scan.values, scan.starts, scan.line_starts
    B = tr.base     # a span from token i to token j: B + (S[i] << 46) + S[j] + len(V[j]) (ast.pack's layout)
    names, numbers, strings = scan.names, scan.numbers, scan.strings
    n = len(V) - 3
    FOLLOW, CLOSE = _FOLLOW, _CLOSE
    K = (1 << 46) + 1   # a one-token span: B + S[i] * K + len(V[i]) (S[i] << 46 | S[i], as S[i] < 1 << 46)
    number_, string_, index_, attr_ = tr.number, tr.string, tr.index, tr.attr
    compare_, pow_, neg_, not_op_, or_op_, and_op_ = tr.compare, tr.pow, tr.neg, tr.not_op, tr.or_op, tr.and_op
    # the commonest nodes made at once from their fields (``tr.make_*``), no children list: Name(id, span,
    # parens), Pipe(value, layer, span, parens), BinOp(op, left, right, span, parens), Call(func, args, kwargs,
    # span, parens)
    name_, pipe_, binop_, call_ = tr.make_name, tr.make_pipe, tr.make_binop, tr.make_call
    # and Assign(targets, value, let, span, trivia), InputStmt(name, type, variadic, where, span, trivia),
    # OutputStmt(name, type, value, span, trivia), TensorTypeExpr(dims, dtype, span), TypeName(name, args, span)
    assign_, in_, out_, tensor_, type_ = tr.make_assign, tr.make_in, tr.make_out, tr.make_tensor_type, tr.make_type_name

    def name_at(i: int) -> str:
        """The NAME at token ``i``, where a state accepts no keyword (any word is a name there)."""
        v = V[i]
        if v not in names and v not in KEYWORDS:
            raise Unsupported("a name expected")
        return v

    def expr(i: int) -> tuple[Any, int]:
        """test: or_test ["if" or_test ["else" test]]; the node and the index past it."""
        v = V[i]
        if V[i + 1] in CLOSE:                                   # a name or number alone (the commonest)
            if v in names:
                return name_(v, B + S[i] * K + len(v), False), i + 1
            if v in numbers:
                return number_(B + S[i] * K + len(v), [v]), i + 1
        node, j = climb(i, _OR)
        if V[j] != "if":
            return node, j
        cond, k = climb(j + 1, _OR)
        if V[k] == "else":
            orelse, k = expr(k + 1)
            return tr.if_else(B + (S[i] << 46) + S[k - 1] + len(V[k - 1]), [node, cond, orelse]), k
        return tr.if_absent(B + (S[i] << 46) + S[k - 1] + len(V[k - 1]), [node, cond]), k

    def climb(i: int, level: int) -> tuple[Any, int]:  # noqa: C901, PLR0912 - the expression levels
        """An expression of ``level`` (or_test ... factor) from token ``i``: a prefix operator or an atom, then
        calls, indexing and attributes (on an atom), and binary operators while the one ahead binds at least as
        tightly as ``level`` allows and its left side may be what has been read so far (``kind``: the level of
        the node read)."""
        v = V[i]
        if v in names:                                          # the commonest atom: a name
            node, j = name_(v, B + S[i] * K + len(v), False), i + 1
            kind = _POST
        elif v == "-":                                          # "-" factor
            inner, j = climb(i + 1, _NEG)
            node = neg_(B + (S[i] << 46) + S[j - 1] + len(V[j - 1]), [inner])
            kind = _NEG
        elif v == "not" and level <= _NOT:                      # "not" not_test
            inner, j = climb(i + 1, _NOT)
            node = not_op_(B + (S[i] << 46) + S[j - 1] + len(V[j - 1]), [inner])
            kind = _NOT
        else:
            node, j = atom(i, v)
            kind = _POST
        while True:
            t = V[j]
            op = FOLLOW.get(t)
            if op is None or op < level:
                return node, j
            if op == _TRAILER:                          # postfix "(" [arguments] ")", "[" expr "]", "." NAME
                if kind != _POST:
                    return node, j
                if t == "(" and V[j + 1] == ")":
                    j += 2
                    node = call_(node, (), (), B + (S[i] << 46) + S[j - 1] + 1, False)
                elif t == "(":
                    node, j = arguments(i, j + 1, node)
                else:
                    node, j = trailer(i, j, t, node)
                continue
            if op > kind:
                return node, j
            if op == _PIPE:                             # pipe "|>" postfix
                rhs, j = postfix(j + 1)
                node = pipe_(node, rhs, B + (S[i] << 46) + S[j - 1] + len(V[j - 1]), False)
            elif op >= _ADD:
                if op == _POW:                          # pipe "**" factor
                    if kind < _PIPE:
                        return node, j
                    rhs, j = climb(j + 1, _NEG)
                    node = pow_(B + (S[i] << 46) + S[j - 1] + len(V[j - 1]), [node, t, rhs])
                else:                                   # arith ADD_OP term, term MUL_OP factor
                    rhs, j = climb(j + 1, op + 1)
                    node = binop_(t, node, rhs, B + (S[i] << 46) + S[j - 1] + len(V[j - 1]), False)
            elif op == _CMP:                            # arith COMP_OP arith (no chains)
                if kind == _CMP:
                    return node, j
                rhs, j = climb(j + 1, _ADD)
                node = compare_(B + (S[i] << 46) + S[j - 1] + len(V[j - 1]), [node, t, rhs])
            elif op == _AND:
                rhs, j = climb(j + 1, _NOT)
                node = and_op_(B + (S[i] << 46) + S[j - 1] + len(V[j - 1]), [node, rhs])
            else:
                rhs, j = climb(j + 1, _AND)
                node = or_op_(B + (S[i] << 46) + S[j - 1] + len(V[j - 1]), [node, rhs])
            kind = op

    def trailer(i: int, j: int, t: str, node: Any) -> tuple[Any, int]:
        """``node`` (from token ``i``) with the call, index or attribute at token ``j`` (``t``)."""
        if t == "(":
            if V[j + 1] == ")":
                return call_(node, (), (), B + (S[i] << 46) + S[j + 1] + 1, False), j + 2
            return arguments(i, j + 1, node)
        if t == "[":
            sub_, j = expr(j + 1)
            if V[j] != "]":
                raise Unsupported("] expected")
            return index_(B + (S[i] << 46) + S[j] + len(V[j]), [node, sub_]), j + 1
        label = name_at(j + 1)
        return attr_(B + (S[i] << 46) + S[j + 1] + len(label), [node, label]), j + 2

    def postfix(i: int) -> tuple[Any, int]:
        v = V[i]
        if v in names:
            node, j = name_(v, B + S[i] * K + len(v), False), i + 1
        else:
            node, j = atom(i, v)
        t = V[j]
        while t == "(" or t == "[" or t == ".":
            node, j = trailer(i, j, t, node)
            t = V[j]
        return node, j

    def arguments(i: int, j: int, node: Any) -> tuple[Any, int]:
        """``node`` (from token ``i``) called with argument ("," argument)* ","? ")" from token ``j``: the Call
        (positional arguments, then keyword arguments, each in order) and the index past the ``)``."""
        args: list[Any] = []
        kws: list[Any] = []
        while True:
            v = V[j]
            if V[j + 1] == "=" and (v in names or v in _KEYWORD_NAMES):     # NAME "=" expr
                value, j = expr(j + 2)
                kws.append((v, value))
            else:
                value, j = expr(j)
                args.append(value)
            t = V[j]
            if t == ",":
                j += 1
                t = V[j]
                if t == ")":
                    break
            elif t == ")":
                break
            else:
                raise Unsupported(", or ) expected")
        return call_(node, tuple(args), tuple(kws), B + (S[i] << 46) + S[j] + 1, False), j + 1

    def atom(i: int, v: str) -> tuple[Any, int]:  # noqa: PLR0911 - one return per kind of atom
        if v in numbers:
            return number_(B + S[i] * K + len(V[i]), [v]), i + 1
        if v in strings:
            return string_(B + S[i] * K + len(V[i]), [v]), i + 1
        if v == "(":
            return parens(i)
        if v == "[":
            return brackets(i, i + 1, tr.list_lit, tr.list_comp, [])
        if v == "true":
            return tr.true(B + S[i] * K + len(V[i]), []), i + 1
        if v == "false":
            return tr.false(B + S[i] * K + len(V[i]), []), i + 1
        if v == "none":
            return tr.none(B + S[i] * K + len(V[i]), []), i + 1
        if v == "seq":
            t = V[i + 1]
            if t == "[":
                return brackets(i, i + 2, tr.seq_list, tr.seq_comp, [])
            if t == "{":
                return seq_named(i)
        elif v == "reparam":
            return reparam(i)
        elif v in _KEYWORD_NAMES or v == "not":                # a keyword no expression starts with: a name
            return name_(v, B + S[i] * K + len(v), False), i + 1
        raise Unsupported("an expression expected")

    def parens(i: int) -> tuple[Any, int]:
        """ "(" ")", "(" expr ")", "(" expr "," [expr ("," expr)* ","?] ")" """
        if V[i + 1] == ")":
            return tr.tuple_lit(B + (S[i] << 46) + S[i + 1] + len(V[i + 1]), []), i + 2
        first, j = expr(i + 1)
        t = V[j]
        if t == ")":
            return tr.paren(B + (S[i] << 46) + S[j] + len(V[j]), [first]), j + 1
        if t != ",":
            raise Unsupported(", or ) expected")
        if V[j + 1] == ")":
            return tr.tuple_lit(B + (S[i] << 46) + S[j + 1] + len(V[j + 1]), [first, None]), j + 2
        items, j = sequence(j + 1, ")", [first])
        return tr.tuple_lit(B + (S[i] << 46) + S[j - 1] + len(V[j - 1]), items), j

    def sequence(j: int, close: str, items: list) -> tuple[list, int]:
        """expr ("," expr)* ","? ``close`` from token ``j``, appended to ``items``; and the index past it."""
        while True:
            value, j = expr(j)
            items.append(value)
            t = V[j]
            if t == ",":
                j += 1
                if V[j] == close:
                    return items, j + 1
            elif t == close:
                return items, j + 1
            else:
                raise Unsupported(f", or {close} expected")

    def clauses(j: int, items: list, close: str) -> tuple[list, int]:
        """comp_for+ comp_if? ``close`` from token ``j`` (a ``for``), appended to ``items``."""
        while V[j] == "for":
            first = j
            if V[j + 1] == "(":                         # "(" NAME ("," NAME)* ")"
                j += 2
                targets = [name_at(j)]
                while V[j + 1] == ",":
                    j += 2
                    targets.append(name_at(j))
                if V[j + 1] != ")":
                    raise Unsupported(") expected")
                target: Any = [tuple(targets), True]
                j += 2
            else:                                       # NAME ("," NAME)*
                j += 1
                targets = [name_at(j)]
                while V[j + 1] == ",":
                    j += 2
                    targets.append(name_at(j))
                target = tuple(targets)
                j += 1
            if V[j] != "in":
                raise Unsupported("in expected")
            iterable, j = climb(j + 1, _OR)
            items.append(tr.comp_for(B + (S[first] << 46) + S[j - 1] + len(V[j - 1]), [target, iterable]))
        if V[j] == "if":
            cond, j = climb(j + 1, _OR)
            items.append(cond)
        if V[j] != close:
            raise Unsupported(f"{close} expected")
        return items, j + 1

    def brackets(i: int, j: int, listing: Any, comprehension: Any, items: list) -> tuple[Any, int]:
        """A list or a comprehension whose ``[`` is token ``j - 1`` (the atom starts at ``i``), after
        ``items``."""
        if V[j] == "]":
            return listing(B + (S[i] << 46) + S[j] + len(V[j]), [*items, None]), j + 1
        first, k = expr(j)
        items.append(first)
        t = V[k]
        if t == "for":
            items, k = clauses(k, items, "]")
            return comprehension(B + (S[i] << 46) + S[k - 1] + len(V[k - 1]), items), k
        if t == "]" or (t == "," and V[k + 1] == "]"):
            k += 1 if t == "]" else 2
            return listing(B + (S[i] << 46) + S[k - 1] + len(V[k - 1]), items), k
        if t != ",":
            raise Unsupported(", or ] expected")
        items, k = sequence(k + 1, "]", items)
        return listing(B + (S[i] << 46) + S[k - 1] + len(V[k - 1]), items), k

    def entry(j: int) -> tuple[Any, int]:
        """(NAME | STRING) ":" expr"""
        v = V[j]
        if (v not in names and v not in strings and v not in KEYWORDS) or V[j + 1] != ":":
            raise Unsupported("an entry expected")
        value, k = expr(j + 2)
        return tr.entry(B + (S[j] << 46) + S[k - 1] + len(V[k - 1]), [v, value]), k

    def seq_named(i: int) -> tuple[Any, int]:
        j = i + 2
        if V[j] == "}":
            return tr.seq_named(B + (S[i] << 46) + S[j] + len(V[j]), [None]), j + 1
        first, j = entry(j)
        if V[j] == "for":
            items, j = clauses(j, [first], "}")
            return tr.seq_named_comp(B + (S[i] << 46) + S[j - 1] + len(V[j - 1]), items), j
        items = [first]
        while True:
            t = V[j]
            if t == ",":
                j += 1
                t = V[j]
            elif t != "}":
                raise Unsupported(", or } expected")
            if t == "}":
                return tr.seq_named(B + (S[i] << 46) + S[j] + len(V[j]), items), j + 1
            value, j = entry(j)
            items.append(value)

    def reparam(i: int) -> tuple[Any, int]:
        j = i + 1
        merged = V[j] if V[j] in strings else None
        if merged is not None:
            j += 1
        t = V[j]
        if t == "[":
            return brackets(i, j + 1, tr.reparam_list, tr.reparam_comp, [merged])
        if t != "{":
            raise Unsupported("[ or { expected")
        j += 1
        items: list[Any] = [merged]
        while V[j] != "}":                              # branch: NAME "=" expr ";"?
            label = V[j]
            if label not in names and (label not in KEYWORDS or V[j - 1] != "{" and V[j - 1] != ";"):
                raise Unsupported("a name expected")        # (after an expression, a keyword may continue it)
            if V[j + 1] != "=":
                raise Unsupported("= expected")
            value, j = expr(j + 2)
            if V[j] == ";":
                j += 1
            items.append(tr.branch(None, [label, value]))
        return tr.reparam(B + (S[i] << 46) + S[j] + len(V[j]), items), j + 1

    def tensor_type(i: int) -> tuple[Any, int]:
        """[NAME] "[" [dim ("," dim)* ","?] "]" """
        j = i
        dtype = None
        if V[j] in names or V[j] in KEYWORDS:
            dtype = V[j]
            j += 1
        if V[j] != "[":
            raise Unsupported("[ expected")
        j += 1
        if V[j] == "]":
            return tensor_((), dtype, B + (S[i] << 46) + S[j] + 1), j + 1
        items = []
        while True:
            if V[j] == "...":
                items.append(tr.rest_dim(B + S[j] * K + len(V[j]), ["..."]))
                j += 1
            else:
                dim, j = expr(j)
                items.append(dim)
            t = V[j]
            if t == ",":
                j += 1
                t = V[j]
            elif t != "]":
                raise Unsupported(", or ] expected")
            if t == "]":
                return tensor_(tuple(items), dtype, B + (S[i] << 46) + S[j] + 1), j + 1

    def type_name(i: int) -> tuple[Any, int]:
        """NAME ("[" type_name ("," type_name)* "]")?"""
        label = name_at(i)
        if V[i + 1] != "[":
            return type_(label, (), B + S[i] * K + len(label)), i + 1
        j = i + 2
        items = []
        while True:
            arg, j = type_name(j)
            items.append(arg)
            t = V[j]
            if t == "]":
                return type_(label, tuple(items), B + (S[i] << 46) + S[j] + 1), j + 1
            if t != ",":
                raise Unsupported(", or ] expected")
            j += 1

    def block_def(i: int) -> tuple[Any, int]:  # noqa: C901, PLR0912 - the block and its statements
        """kind NAME "(" [param ("," param)* ","?] ")" "{" doc? stmt* "}" """
        kind_name = tr.kind(B + S[i] * K + len(V[i]), [V[i]]), name_at(i + 1)
        if V[i + 2] != "(":
            raise Unsupported("( expected")
        j = i + 3
        items: list[Any] = []                           # the parameters, then the statements
        while V[j] != ")":                              # param: NAME ":" type_name ["=" expr]
            first = j
            label = name_at(j)
            if V[j + 1] != ":":
                raise Unsupported(": expected")
            kind, j = type_name(j + 2)
            default = None
            if V[j] == "=":
                default, j = expr(j + 1)
            items.append(tr.param(B + (S[first] << 46) + S[j - 1] + len(V[j - 1]), [label, kind, default]))
            t = V[j]
            if t == ",":
                j += 1
            elif t != ")":
                raise Unsupported(", or ) expected")
        if V[j + 1] != "{":
            raise Unsupported("{ expected")
        j += 2
        params, items = items, []
        doc = doc_span = None
        if V[j] in strings:
            doc, doc_span = V[j], B + S[j] * K + len(V[j])
            j += 1
        while True:
            v = V[j]
            first = j
            if v in names:                              # assign: NAME ("," NAME)* "=" expr
                targets = [v]
                while V[j + 1] == ",":
                    j += 2
                    targets.append(name_at(j))
                if V[j + 1] != "=":
                    raise Unsupported("= expected")
                value, j = expr(j + 2)
                items.append(assign_(tuple(targets), value, False, B + (S[first] << 46) + S[j - 1] + len(V[j - 1]),
                                     NO_TRIVIA))
            elif v == "}":
                return tr.block_def(B + (S[i] << 46) + S[j] + 1, [*kind_name, params, doc, doc_span, items]), j + 1
            elif v == "in":                             # "in" [STAR] NAME ":" tensor_type ["where" or_test]
                star = None
                if V[j + 1] == "*":
                    star = "*"
                    j += 1
                label = name_at(j + 1)
                if V[j + 2] != ":":
                    raise Unsupported(": expected")
                kind, j = tensor_type(j + 3)
                where = None
                if V[j] == "where":
                    where, j = climb(j + 1, _OR)
                items.append(in_(label, kind, star is not None, where, B + (S[first] << 46) + S[j - 1] + len(V[j - 1]),
                                 NO_TRIVIA))
            elif v == "out":                            # "out" NAME [":" tensor_type] "=" expr, or "out" expr
                t = V[j + 2]
                if (t == ":" or t == "=") and (V[j + 1] in names or V[j + 1] in _KEYWORD_NAMES):
                    label = V[j + 1]
                    kind = None
                    j += 2
                    if t == ":":
                        kind, j = tensor_type(j + 1)
                        if V[j] != "=":
                            raise Unsupported("= expected")
                    value, j = expr(j + 1)
                    items.append(tr.out_named(B + (S[first] << 46) + S[j - 1] + len(V[j - 1]), [label, kind, value]))
                else:
                    value, j = expr(j + 1)
                    items.append(out_(None, None, value, B + (S[first] << 46) + S[j - 1] + len(V[j - 1]), NO_TRIVIA))
            elif v == "let":
                value, j = let_stmt(j)
                items.append(value)
            else:
                raise Unsupported("a statement expected")
            if V[j] == ";":
                j += 1

    def let_stmt(i: int) -> tuple[Any, int]:
        """"let" NAME "=" expr"""
        label = name_at(i + 1)
        if V[i + 2] != "=":
            raise Unsupported("= expected")
        value, j = expr(i + 3)
        return tr.let_stmt(B + (S[i] << 46) + S[j - 1] + len(V[j - 1]), [label, value]), j

    def item(i: int) -> tuple[Any, int]:
        """import_stmt | block_def | let_stmt"""
        v = V[i]
        if v == "import":                               # "import" STRING ["as" NAME]
            if V[i + 1] not in strings:
                raise Unsupported("a string expected")
            if V[i + 2] == "as":
                alias = name_at(i + 3)
                return tr.import_stmt(B + (S[i] << 46) + S[i + 3] + len(alias), [V[i + 1], alias]), i + 4
            return tr.import_stmt(B + (S[i] << 46) + S[i + 1] + len(V[i + 1]), [V[i + 1], None]), i + 2
        if v == "let":
            return let_stmt(i)
        return block_def(i)

    def check(first: int, stop: int) -> None:
        """Refuse where ``parser._check_nesting`` refuses tokens ``first`` to ``stop`` (a fresh stretch)."""
        if stop - first > _FEW and nesting is not None and not _shallow(V, S, first, stop) and nesting(
                text[scan.offset(S[first]):scan.offset(S[stop - 1] + len(V[stop - 1]))]):
            raise Unsupported("nesting too deep")

    def run() -> Any:
        if rule == "start":
            items = []
            i = fresh = 0
            while i < n:
                if i and S[i] >> _BITS > S[i - 1] >> _BITS:        # an item on a fresh line
                    check(fresh, i)
                    fresh = i
                value, i = item(i)
                items.append(value)
            check(fresh, n)
            result = tr.start(None, items)
        else:
            check(0, n)
            parse_rule = {"expr": expr, "tensor_type": tensor_type, "type_name": type_name}.get(rule)
            if parse_rule is None:
                raise Unsupported(f"no rule {rule}")
            result, i = parse_rule(0)
        if i != n:
            raise Unsupported("more text after the end")
        return result

    try:
        result = run()
        comments += comments_of(text, line_starts, comment)
    except RecursionError:
        raise Unsupported("nesting too deep for the lean parser") from None
    finally:        # the functions above refer to one another through their cells (a cycle, collected only at the
        # next full collection, after the front end): empty the cells, so they go at once with the tokens they hold
        for function in (name_at, expr, climb, trailer, postfix, arguments, atom, parens, sequence, clauses,
                         brackets, entry, seq_named, reparam, tensor_type, type_name, block_def, let_stmt, item,
                         check, run):
            for cell in function.__closure__ or ():
                cell.cell_contents = None
    return result
