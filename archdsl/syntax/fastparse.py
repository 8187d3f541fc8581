"""A lean driver for the .arch LALR tables: the same grammar, tables, contextual lexer and syntax tree as lark,
without lark's per-token machinery.

lark's LALR front end builds a Token object for every token, a parse Tree with position metadata for every
rule, and then walks that tree again to make the syntax tree: about 20 µs per token on a large spec. This
driver runs the same tables (``grammar/arch_tables.json``, through the ``lark.Lark`` object) in one loop:

- the lexer is lark's own per-state regular expressions (the contextual lexer: a keyword is a keyword only
  where the grammar accepts it), with the same keyword retyping, line counting and comment reporting;
- a reduction of a ``?rule`` to its single child (the long chains ``atom -> postfix -> ... -> expr``) only
  changes the state; every other rule runs lark's own child filter and the ``_ToAst`` method at once, with
  the rule's position (first token to last token of everything it reduced, as lark's ``propagate_positions``);
- only tokens the tree keeps (names, numbers, strings, operators) become lark Tokens.

It handles well-formed input only: on any error (a syntax error, a bad ``kind``, anything unexpected) the
caller parses again with lark, whose errors and messages are the reference (``parser._parse_rule``).
"""

from __future__ import annotations

import functools
import re
import sys
from bisect import bisect_right
from typing import Any

import lark
from lark.lexer import PatternStr, UnlessCallback
from lark.parsers.lalr_analysis import Shift
from lark.tree import Tree

from archdsl.syntax.ast import MAX_POSITION


class Unsupported(Exception):
    """Input the lean driver does not handle (any error): the caller falls back to lark."""


class Tables:
    """Everything the loop needs, precomputed once from the lark parser."""

    def __init__(self, parser: lark.Lark):
        frontend = parser.parser
        inner = frontend.parser.parser
        table = inner.parse_table
        lexer = frontend.lexer
        self.start_states = dict(table.start_states)
        self.end_states = dict(table.end_states)
        rules: list = []
        rule_index: dict = {}
        self.actions: dict[int, dict[str, int]] = {}       # state -> token or rule name -> shift (>= 0) / ~rule
        for state, row in table.states.items():
            acts = {}
            for sym, (action, arg) in row.items():
                if action is Shift:
                    acts[sym] = arg
                else:
                    if arg not in rule_index:
                        rule_index[arg] = len(rules)
                        rules.append(arg)
                    acts[sym] = ~rule_index[arg]
            self.actions[state] = acts
        self.rules = rules
        self.sizes = [len(r.expansion) for r in rules]
        self.origins = [r.origin.name for r in rules]
        # a `?rule: child` reduces to the child itself: only the state changes
        self.unit = [bool(r.options.expand1) and not r.alias and len(r.expansion) == 1
                     and not (r.expansion[0].is_term and r.expansion[0].filter_out)
                     and not (not r.expansion[0].is_term and r.expansion[0].name.startswith("_"))
                     and not any(r.options.empty_indices or ()) for r in rules]
        self.chains: dict[tuple[int, int, str], int] = {}   # memo of unit-reduction chains (see ``parse``)
        # lark's child filter as data: per rule, the children kept (an index; -1 for the None placeholder of an
        # absent ``[optional]`` part; -2 - index for the child list of an inlined ``_rule``, spliced in), or None
        # to keep them all; and whether a single child stands for the rule (``?rule``)
        self.picks = [_pick(r, parser.options.maybe_placeholders) for r in rules]
        self.splices = [p is not None and any(i < -1 for i in p) for p in self.picks]
        self.expand1 = [bool(r.options.expand1) and not r.alias for r in rules]
        self.inlined = [r.origin.name.startswith("_") for r in rules]     # a `_rule`: its parent splices it
        if any(r.alias or r.options.expand1 for r, inline in zip(rules, self.inlined, strict=True) if inline):
            raise Unsupported("an inlined _rule with an alias or a ?")
        self.methods: dict[type, list[Any]] = {}        # per transformer class: its method for each rule
        self.names = [r.alias or r.options.template_source or r.origin.name for r in rules]
        # terminals some rule keeps as a child (the others are punctuation and keywords, dropped by the filter)
        self.kept = {s.name for r in rules for s in r.expansion if s.is_term and not s.filter_out}
        root = lexer.root_lexer
        self.ignore = frozenset(root.ignore_types)
        self.newline_types = frozenset(root.newline_types)
        # one scanner for every state: lark's root lexer (all terminals, in lark's order). Where a state's own
        # lexer could match differently (the root's token is not one the state accepts), the parse stops and
        # lark parses instead (see ``parse``).
        root.scanner                                         # noqa: B018 - builds the scanner and its callbacks
        if len(root.scanner._mres) != 1:
            raise Unsupported("lexer split over several regular expressions")
        mre = root.scanner._mres[0]
        ws = root.terminals_by_name.get("WS")
        if ws is not None and "WS" in root.ignore_types:
            mre = re.compile(f"(?:{ws.pattern.to_regexp()})?(?:{mre.pattern})", mre.flags)
        self.match = mre.match
        self.kinds: list[Any] = [None] * (mre.groups + 1)        # group number -> terminal name
        for name, number in mre.groupindex.items():
            self.kinds[number] = name
        self.retype: dict[str, dict[str, str]] = {}             # a terminal's words that are other terminals
        for name, cb in root.callback.items():
            if isinstance(cb, UnlessCallback):
                words = {}
                for term in cb.scanner.terminals:
                    if not isinstance(term.pattern, PatternStr) or term.pattern.flags:
                        raise Unsupported("keyword with flags")
                    words[term.pattern.value] = term.name
                self.retype[name] = words
            elif name not in root.ignore_types:
                raise Unsupported(f"lexer callback on {name}")


def _pick(rule: Any, placeholders: bool) -> tuple[int, ...] | None:
    """Which children lark's ``maybe_create_child_filter`` keeps for ``rule`` (see ``Tables.picks``)."""
    empty = rule.options.empty_indices if placeholders else None
    if empty:
        text = "".join(str(int(b)) for b in empty)
        nones = [len(ones) for ones in text.split("0")]
    else:
        nones = [0] * (len(rule.expansion) + 1)
    keep: list[int] = []
    for i, sym in enumerate(rule.expansion):
        keep += [-1] * nones[i]
        if not (sym.is_term and sym.filter_out):
            keep.append(-2 - i if not sym.is_term and sym.name.startswith("_") else i)
    keep += [-1] * nones[len(rule.expansion)]
    return None if keep == list(range(len(rule.expansion))) else tuple(keep)


@functools.cache
def tables(parser: lark.Lark) -> Tables:
    """The driver's tables for ``parser`` (built once per process)."""
    return Tables(parser)


def _method(transformer: Any, name: str) -> Any:
    """The plain function of ``transformer``'s method for rule ``name`` (None: the rule makes a lark Tree)."""
    method = None if name.startswith("_") else getattr(type(transformer), name, None)
    return getattr(method, "base_func", method)


_DROPPED = object()          # the value of a token no rule keeps


def line_starts(text: str) -> list[int]:
    """The offset at which each line of ``text`` starts (lines end at ``\n``, as lark counts them)."""
    starts = [0]
    starts += [m.end() for m in _NEWLINE.finditer(text)]
    return starts


_NEWLINE = re.compile("\n")


def parse(parser: lark.Lark, text: str, rule: str, transformer: Any, comments: list, comment: Any,  # noqa: C901, PLR0912, PLR0915 - one hot loop
          lines: list[int] | None = None) -> Any:
    """Parse ``text`` from ``rule`` and build the syntax tree with ``transformer`` (a ``_LeanToAst``).

    Each transformer method is called as ``method(transformer, here, children)``: ``here`` is the rule's packed
    span (``ast.pack``, with the base ``transformer.base``; None for the rules in ``transformer.SPANLESS``) and
    tokens among the children are plain strings (names interned). Comments are appended to ``comments`` as
    ``comment(line, column, text)``. ``lines`` are the line starts of ``text`` (``line_starts``), when the
    caller has them. Raises Unsupported on any error."""
    t = tables(parser)
    methods = t.methods.get(type(transformer))
    if methods is None:
        spanless: frozenset[str] = getattr(transformer, "SPANLESS", frozenset())
        methods = t.methods[type(transformer)] = [(_method(transformer, name), name not in spanless)
                                                  for name in t.names]
    picks, splices, expand1, names, inlined = t.picks, t.splices, t.expand1, t.names, t.inlined
    actions, sizes, origins, unit, kept = t.actions, t.sizes, t.origins, t.unit, t.kept
    ignore, chains, match, kinds, retypes = t.ignore, t.chains, t.match, t.kinds, t.retype
    if len(text) >= MAX_POSITION:
        raise Unsupported("text too long for packed spans")
    ls = line_starts(text) if lines is None else lines
    base = transformer.base
    intern = sys.intern
    end_state = t.end_states[rule]
    states = [t.start_states[rule]]
    values: list[Any] = []
    firsts: list[Any] = []          # per stack entry: offset of its first character, or None (nothing)
    lasts: list[Any] = []           # and just past its last one
    pos, size = 0, len(text)
    while True:
        if pos < size:
            m = match(text, pos)
            if m is None:
                raise Unsupported("no token here")
            number = m.lastindex
            kind = kinds[number]
            start, end = m.span(number)
            pos = end
            if kind in ignore:
                if kind == "COMMENT":
                    line = bisect_right(ls, start)
                    comments.append(comment(line, start - ls[line - 1] + 1, text[start:end].rstrip()))
                continue
            words = retypes.get(kind)
            if words is not None:
                value = text[start:end]
                word = words.get(value)
                if word is not None and word in actions[states[-1]]:
                    kind = word
                    token: Any = _DROPPED if kind not in kept else value
                else:
                    token = intern(value) if kind == "NAME" else value
            elif kind in kept:
                token = text[start:end]
            else:
                token = _DROPPED
        else:
            kind, token, start, end = "$END", None, None, None
        while True:
            top = states[-1]
            act = actions[top].get(kind)
            if act is None:
                raise Unsupported("unexpected token")
            if act < 0 and unit[~act]:
                # a chain of `?rule: child` reductions: the states below stay, only the top one changes, so the
                # chain's end depends on (state below, top state, token) alone and is looked up once computed
                below = states[-2]
                key = (below, top, kind)
                new = chains.get(key)
                if new is None:
                    new = top
                    while act is not None and act < 0 and unit[~act]:
                        new = actions[below][origins[~act]]
                        act = actions[new].get(kind)
                    chains[key] = new
                states[-1] = new
                if token is None and new == end_state:
                    return values[-1]
                continue
            if act >= 0:
                if token is None:
                    raise Unsupported("shift at the end")
                states.append(act)
                values.append(token)
                firsts.append(start)
                lasts.append(end)
                break
            r = ~act
            n = sizes[r]
            if n:
                children = values[-n:]
                first = firsts[-n]
                if first is None:
                    for first in firsts[-n:]:
                        if first is not None:
                            break
                last = lasts[-1]
                if last is None:
                    for last in reversed(lasts[-n:]):
                        if last is not None:
                            break
                del states[-n:], values[-n:], firsts[-n:], lasts[-n:]
            else:
                children, first, last = [], None, None
            pick = picks[r]
            if pick is not None:
                if splices[r]:
                    spliced: list = []
                    for i in pick:
                        if i >= 0:
                            spliced.append(children[i])
                        elif i == -1:
                            spliced.append(None)
                        elif spliced:
                            spliced += children[-2 - i]
                        else:       # the list of a left-recursive `_rule` grows in place (as in lark)
                            spliced = children[-2 - i]
                    children = spliced
                else:
                    children = [children[i] if i >= 0 else None for i in pick]
            result: Any
            if inlined[r]:
                result = children               # spliced into the parent's children
            elif expand1[r] and len(children) == 1:
                result = children[0]
            else:
                method, spanned = methods[r]
                if method is None:
                    result = Tree(names[r], children)
                elif not spanned:
                    result = method(transformer, None, children)
                elif first is None:
                    result = method(transformer, base, children)          # no text: Span(file=file)
                else:
                    a = bisect_right(ls, first)
                    b = bisect_right(ls, last)
                    result = method(transformer, base | a << 69 | (first - ls[a - 1] + 1) << 46 | b << 23
                                    | (last - ls[b - 1] + 1), children)
            states.append(actions[states[-1]][origins[r]])
            values.append(result)
            firsts.append(first)
            lasts.append(last)
            if token is None and states[-1] == end_state:
                return values[-1]
