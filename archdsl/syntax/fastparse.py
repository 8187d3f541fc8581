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
from typing import Any

import lark
from lark import Token
from lark.lexer import PatternStr, UnlessCallback
from lark.parsers.lalr_analysis import Shift
from lark.tree import Tree


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
        # per state: the compiled alternatives of lark's contextual lexer and the keyword retyping of names
        self.scanners: dict[int, tuple[Any, dict[str, dict[str, str]]]] = {}
        by_lexer: dict[int, tuple[Any, dict[str, dict[str, str]]]] = {}
        for state, basic in lexer.lexers.items():
            if id(basic) not in by_lexer:
                scanner = basic.scanner
                if len(scanner._mres) != 1:
                    raise Unsupported("lexer split over several regular expressions")
                retype: dict[str, dict[str, str]] = {}
                for name, cb in basic.callback.items():
                    if isinstance(cb, UnlessCallback):
                        words = {}
                        for term in cb.scanner.terminals:
                            if not isinstance(term.pattern, PatternStr) or term.pattern.flags:
                                raise Unsupported("keyword with flags")
                            words[term.pattern.value] = term.name
                        retype[name] = words
                    elif name not in basic.ignore_types:
                        raise Unsupported(f"lexer callback on {name}")
                mre = scanner._mres[0]
                ws = basic.terminals_by_name.get("WS")
                if ws is not None and "WS" in basic.ignore_types:
                    # leading white space is taken with the token (one match instead of two; a token never
                    # starts with white space, so what matches is the same)
                    mre = re.compile(f"(?:{ws.pattern.to_regexp()})?(?:{mre.pattern})", mre.flags)
                by_lexer[id(basic)] = (mre.match, retype)
            self.scanners[state] = by_lexer[id(basic)]
        root = lexer.root_lexer
        self.ignore = frozenset(root.ignore_types)
        self.newline_types = frozenset(root.newline_types)


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


def parse(parser: lark.Lark, text: str, rule: str, transformer: Any, comments: list, comment: Any) -> Any:  # noqa: C901, PLR0912, PLR0915 - one hot loop
    """Parse ``text`` from ``rule`` and build the syntax tree with ``transformer`` (a ``_ToAst``), whose
    ``meta`` is set to ``(line, column, end_line, end_column)`` before each of its methods runs. Comments are
    appended to ``comments`` as ``comment(line, column, text)``. Raises Unsupported on any error."""
    t = tables(parser)
    methods = t.methods.get(type(transformer))
    if methods is None:
        methods = t.methods[type(transformer)] = [_method(transformer, name) for name in t.names]
    picks, splices, expand1, names, inlined = t.picks, t.splices, t.expand1, t.names, t.inlined
    actions, sizes, origins, unit, kept = t.actions, t.sizes, t.origins, t.unit, t.kept
    scanners, ignore, newline_types, chains = t.scanners, t.ignore, t.newline_types, t.chains
    end_state = t.end_states[rule]
    states = [t.start_states[rule]]
    values: list[Any] = []
    places: list[Any] = []          # per stack entry: (line, column, end_line, end_column) or None (nothing)
    pos, size, line, line_start = 0, len(text), 1, 0
    while True:
        if pos < size:
            match, retype = scanners[states[-1]]
            m = match(text, pos)
            if m is None:
                raise Unsupported("no token here")
            kind = m.lastgroup
            end = m.end()
            value = m.group(kind)
            start = end - len(value)
            if start != pos:                    # white space before the token
                count = text.count("\n", pos, start)
                if count:
                    line += count
                    line_start = text.rindex("\n", pos, start) + 1
                pos = start
            column = pos - line_start + 1
            first_line = line
            if kind in newline_types:
                count = value.count("\n")
                if count:
                    line += count
                    line_start = pos + value.rindex("\n") + 1
            if kind in ignore:
                if kind == "COMMENT":
                    comments.append(comment(first_line, column, value.rstrip()))
                pos = end
                continue
            words = retype.get(kind)
            if words is not None:
                kind = words.get(value, kind)
            place = (first_line, column, line, end - line_start + 1)
            token: Any = Token(kind, value, pos, first_line, column, line, end - line_start + 1, end) \
                if kind in kept else _DROPPED
            pos = end
        else:
            kind, token, place = "$END", None, None
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
                places.append(place)
                break
            r = ~act
            origin = origins[r]
            if True:
                n = sizes[r]
                if n:
                    children = values[-n:]
                    spots = places[-n:]
                    del states[-n:], values[-n:], places[-n:]
                    first: Any = None
                    last: Any = None
                    for spot in spots:
                        if spot is not None:
                            first = spot
                            break
                    if first is not None:
                        for spot in reversed(spots):
                            if spot is not None:
                                last = spot
                                break
                        here = (first[0], first[1], last[2], last[3])
                    else:
                        here = None
                else:
                    children, here = [], None
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
                    method = methods[r]
                    result = method(transformer, here, children) if method is not None \
                        else Tree(names[r], children)
                goto = actions[states[-1]][origin]
                states.append(goto)
                values.append(result)
                places.append(here)
            if token is None and states[-1] == end_state:
                return values[-1]
