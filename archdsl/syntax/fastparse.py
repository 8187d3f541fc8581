"""A lean driver for the .arch LALR tables: the same grammar, tables, tokens and syntax tree as lark, without
lark's per-token machinery.

lark's LALR front end builds a Token object for every token, a parse Tree with position metadata for every
rule, and then walks that tree again to make the syntax tree: about 20 µs per token on a large spec. This
driver runs the same tables (``grammar/arch_tables.json``, through the ``lark.Lark`` object) in one loop, at
about 2 µs per token:

- one scanner for all states: lark's root lexer alternatives, in lark's order, unnamed (so the regular
  expression engine skips those that cannot start at a character), leading white space taken along; a token's
  terminal comes from its first character (names, numbers, strings, comments) or a small table (punctuation,
  keywords). Where a state's own contextual lexer could have split the text differently, the root's token is
  not one the state accepts, and the parse stops (lark then parses). A keyword or ``*``/``-`` becomes its own
  terminal where the state accepts that, as lark's per-state keyword retyping does;
- tokens are plain strings (names interned); positions are tracked per line and packed into ints, and a
  rule's span is packed too (``ast.pack``: nodes keep an int, ``node.span`` makes the Span when read);
- a reduction of a ``?rule`` to its single child (the long chains ``atom -> postfix -> ... -> expr``) only
  changes the state; every other rule runs lark's own child filter and the ``_LeanToAst`` method at once,
  with the rule's position (first token to last token of everything it reduced, as lark's
  ``propagate_positions``);
- the nesting limits of ``parser._check_nesting`` are computed on the same tokens, so a text that parses here
  needs no separate scans (tests/syntax/test_lean_driver.py checks this never accepts more).

It handles well-formed input only: on any error (a syntax error, a bad ``kind``, anything unexpected) the
caller parses again with lark, whose errors and messages are the reference (``parser._parse_rule``).
"""

from __future__ import annotations

import functools
import operator
import re
import sys
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

    def __init__(self, parser: lark.Lark):  # noqa: C901 - one table after another
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
        # one scanner for every state: lark's root lexer (all terminals, in lark's order). Where a state's own
        # lexer could match differently (the root's token is not one the state accepts), the parse stops and
        # lark parses instead (see ``parse``).
        root.scanner                                         # noqa: B018 - builds the scanner and its callbacks
        if len(root.scanner._mres) != 1:
            raise Unsupported("lexer split over several regular expressions")
        named = root.scanner._mres[0]
        ws = root.terminals_by_name.get("WS")
        if ws is None or "WS" not in root.ignore_types or ws.pattern.to_regexp() != _WS:
            raise Unsupported("white space is not the grammar's WS")
        # the same alternatives in the same order, unnamed (so the regular expression engine can skip those that
        # cannot start at a character), with leading white space taken along and any other character last
        alternatives = [f"(?:{t.pattern.to_regexp()})" for t in root.scanner.terminals if t.name != "WS"]
        self.tokens = re.compile(f"(?:{_WS})?({'|'.join(alternatives)}|[^ \\t\\f\\r\\n])", named.flags).finditer
        self.named = named.fullmatch
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
        self.keywords = self.retype.pop("NAME", {})
        # a token's terminal from its first character, where that decides it (the alternatives before NAME,
        # NUMBER and STRING in lark's order start with none of these characters; checked here)
        first: dict[str, str] = {}
        for chars, kind in ((_LETTERS, "NAME"), ("0123456789", "NUMBER"), ("\"'", "STRING"), ("#", "COMMENT")):
            for ch in chars:
                found = named.match(ch + "0" * (kind == "NUMBER") + ch * (kind == "STRING"))
                if found is None or found.lastgroup != kind:
                    raise Unsupported(f"{ch!r} does not start a {kind}")
                first[ch] = kind
        self.first = first
        # every other token (punctuation: a short list): its terminal, the terminal it becomes where a state
        # accepts that (``*`` -> STAR, ``-`` -> MINUS), and whether the tree keeps each; filled as met
        self.fixed: dict[str, tuple[str, str | None, Any, int, str]] = {}
        # the parse table by terminal or rule name: per state, the shift (>= 0), the reduction ~rule (< 0), or
        # a ``?rule: child`` reduction (<= UNIT - rule); None where the state has no action
        count = max(table.states) + 1
        by_symbol: dict[str, list[int | None]] = {}
        for state, acts in self.actions.items():
            for sym, act in acts.items():
                column = by_symbol.setdefault(sym, [None] * count)
                column[state] = UNIT - ~act if act < 0 and self.unit[~act] else act
        self.by_symbol = by_symbol
        self.gotos = [by_symbol[origin] for origin in self.origins]
        # per terminal: its column of the table and the ends of unit chains by (top, below) state (see ``parse``)
        self.per_kind: dict[str, tuple[list[int | None], dict[int, int]]] = {
            sym: (column, {}) for sym, column in by_symbol.items()}
        self.nowhere: tuple[list[int | None], dict[int, int]] = ([None] * count, {})    # a terminal no state accepts
        for word, kind in self.keywords.items():
            self.fixed[word] = ("NAME", kind, by_symbol.get(kind), 1 if word in _WORD_OPS else 0, word)


_WS = "(?:[ \t\f\r\n])+"
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
UNIT = -1 << 20
_LOW = (1 << 46) - 1            # of a packed span: the end's line and column
_HIGH = ~_LOW                   # and the rest (the file, the start's line and column)


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


_WORD_OPS = frozenset({"and", "or", "not", "if", "else"})
_PAREN, _BRACKET, _BRACE, _CLOSE, _COMMA = -1, -2, -3, -4, -5
_OPERATORS = re.compile(r"\|>|\*\*|//|[=!<>]=|[-+*/%@<>.]")      # as parser._COUNTED splits punctuation


def _punctuation(t: Tables, token: str) -> tuple[str, str | None, Any, int, str] | None:
    """A punctuation token's entry in ``Tables.fixed`` (kept there when short: numbers such as ``.5`` also come
    here, and they are many), or None where no terminal matches it."""
    found = t.named(token)
    if found is None or found.lastgroup is None:
        return None                          # a character no terminal starts with: lark reports it
    kind = found.lastgroup
    word = t.retype.get(kind, {}).get(token)
    code = {"(": _PAREN, "[": _BRACKET, "{": _BRACE, ")": _CLOSE, "]": _CLOSE, "}": _CLOSE, ",": _COMMA}.get(
        token, len(_OPERATORS.findall(token)))
    entry = (kind, word, None if word is None else t.by_symbol.get(word), code, token)
    if len(token) <= 3:
        t.fixed[token] = entry
    return entry


_ALL, _ONE, _SOME, _SPLICE, _PLACEHOLDERS = range(5)


def _take(n: int, pick: tuple[int, ...] | None, splice: bool) -> tuple[int, Any]:
    """How the loop takes a rule's kept children (``Tables.picks``) from the top ``n`` values of the stack: all of
    them; one (its index from the top); several (an itemgetter of those indices); spliced ``_rule`` lists among
    them; or with None placeholders (the pick)."""
    if pick is None:
        return _ALL, None
    if splice:
        return _SPLICE, pick
    if -1 in pick or not pick:
        return _PLACEHOLDERS, pick
    if len(pick) == 1:
        return _ONE, pick[0] - n
    return _SOME, operator.itemgetter(*(i - n for i in pick))


def _classify(t: Tables, value: str, per_kind: dict) -> tuple | None:
    """The parse loop's entry for the token text ``value``: the column of the parse table for its terminal, that
    terminal's memo of unit chains (see ``parse``), the token as the tree keeps it (``_DROPPED`` where no rule
    keeps it), its nesting-estimate code, and the same three for the terminal it becomes where a state accepts
    that (a keyword, ``*`` -> STAR, ``-`` -> MINUS), or None; None for a comment. Raises Unsupported where no
    terminal matches."""
    found = t.fixed.get(value)                  # punctuation and keywords met before
    if found is None:
        kind = t.first.get(value[0])
        if kind == "COMMENT":
            return None
        if kind is None:                                            # punctuation not met before, or no token
            found = _punctuation(t, value)
            if found is None:
                raise Unsupported("no token here")
        else:                                                       # a name, a number or a string
            if len(value) == 1 and kind == "STRING":
                raise Unsupported("an unclosed string")              # (the last alternative took the quote)
            acts, memo = per_kind.get(kind) or t.nowhere
            return (acts, memo, sys.intern(value) if kind == "NAME" else value, 0, None, None, None)
    kind, word, row, code, canonical = found
    acts, memo = per_kind.get(kind) or t.nowhere
    token = canonical if kind in t.kept else _DROPPED
    if row is None:
        return (acts, memo, token, code, None, None, None)
    wacts, wmemo = per_kind[word]
    return (acts, memo, token, code, wacts, wmemo, canonical if word in t.kept else _DROPPED)


def parse(parser: lark.Lark, text: str, rule: str, transformer: Any, comments: list, comment: Any,  # noqa: C901, PLR0912, PLR0915 - one hot loop
          limits: tuple[int, int] | None = None) -> Any:
    """Parse ``text`` from ``rule`` and build the syntax tree with ``transformer`` (a ``_LeanToAst``).

    Each transformer method is called as ``method(transformer, here, children)``: ``here`` is the rule's packed
    span (``ast.pack``, with the base ``transformer.base``; None for the rules in ``transformer.SPANLESS``) and
    tokens among the children are plain strings (names interned). Comments are appended to ``comments`` as
    ``comment(line, column, text)``. With ``limits`` (most brackets open at once, largest nesting estimate),
    raises Unsupported where ``parser._check_nesting`` would refuse the text (so the caller need not run it
    before a parse that succeeds). Raises Unsupported on any error."""
    t = tables(parser)
    methods = t.methods.get(type(transformer))
    if methods is None:
        spanless: frozenset[str] = getattr(transformer, "SPANLESS", frozenset())
        methods = [(t.sizes[r], *_take(t.sizes[r], t.picks[r], t.splices[r]), t.inlined[r], t.expand1[r], t.gotos[r],
                    _method(transformer, name), name not in spanless, name) for r, name in enumerate(t.names)]
        for r, (n, mode, _, inline, expand, gotos, method, spanned, _) in enumerate(methods):
            methods[r] += (not inline and not expand and method is not None and spanned,)
            if n == 1 and mode == _ALL and not inline and not expand and method is not None:
                methods[r] = (gotos, method, spanned)           # the short form the loop takes at once
        t.methods[type(transformer)] = methods
    per_kind = t.per_kind
    seen: dict[str, tuple] = {}     # per token text met: its ``_classify`` entry (the same every time it is met)
    if len(text) >= MAX_POSITION:
        raise Unsupported("text too long for packed spans")
    base = transformer.base
    end_state = t.end_states[rule]
    states = [t.start_states[rule]]
    values: list[Any] = []
    # per stack entry: its packed span (``ast.pack``: the base, then line << 23 | column of its first character and
    # of the place just past its last one), or None where it holds no text
    spans: list[Any] = []
    push_state, push_value, push_span = states.append, values.append, spans.append
    token: Any
    # the nesting estimate of ``parser._check_nesting``, on the same tokens: open brackets, and per open bracket
    # the operators, calls and indexing counted since the last comma (or line break, inside braces)
    check = limits is not None
    max_depth, max_chain = limits if limits is not None else (0, 0)
    counts = [0]                    # per open bracket (the first: the file, a brace): its count
    braces = [True]                 # and whether it is a brace
    brace_top, total, size = True, 0, len(text)
    line, line_start, newline = 1, 0, text.find("\n")        # the current line, its start and its end
    at = (1 << 23) + 1
    lead = base + (at << 46) + at               # + (offset << 46) + end offset: the packed span of a token
    if newline < 0:
        newline = size
    for m in t.tokens(text):
        start, end = m.span(1)
        value = text[start:end]
        if start > newline:                 # on a later line (tokens hold no line breaks): count them once
            line += text.count("\n", newline, start)
            line_start = text.rindex("\n", newline, start) + 1
            at = (line << 23) + 1 - line_start          # + offset: the packed line and column of the offset
            lead = base + (at << 46) + at
            newline = text.find("\n", start)
            if newline < 0:
                newline = size
            if brace_top:                   # the nesting estimate: a line break inside braces ends a chain
                total -= counts[-1]
                counts[-1] = 0
        found = seen.get(value)
        if found is None:
            found = _classify(t, value, per_kind)
            if found is None:                                       # a comment
                comments.append(comment(line, start - line_start + 1, value.rstrip()))
                continue
            seen[value] = found
        acts, memo, token, code, wacts, wmemo, wtoken = found
        if wacts is not None and wacts[states[-1]] is not None:     # a keyword or ``*``/``-`` where accepted
            acts, memo, token = wacts, wmemo, wtoken
        if check:
            if code:
                if code > 0:
                    counts[-1] += code
                    total += code
                elif code == _COMMA:
                    total -= counts[-1]
                    counts[-1] = 0
                elif code == _CLOSE:
                    if len(counts) > 1:
                        total -= counts.pop()
                        braces.pop()
                        brace_top = braces[-1]
                else:                                               # an opening bracket
                    weight = 3 if code == _PAREN else 2
                    counts[-1] += weight
                    total += weight
                    counts.append(0)
                    brace_top = code == _BRACE
                    braces.append(brace_top)
                    if len(counts) > max_depth + 1:
                        raise Unsupported("brackets nest too deeply")
                if total > max_chain:
                    raise Unsupported("expressions nest too deeply")
        top = states[-1]
        while True:
            act = acts[top]
            if act is None:
                raise Unsupported("unexpected token")
            if act >= 0:
                push_state(act)
                push_value(token)
                push_span(lead + (start << 46) + end)
                break
            if act <= UNIT:
                # a chain of `?rule: child` reductions: the states below stay, only the top one changes, so the
                # chain's end depends on (top state, state below) alone for this token, and is looked up once
                # computed
                below = states[-2]
                key = top << 16 | below
                new = memo.get(key)
                if new is None:
                    new = _chain(t, acts, top, below)
                    memo[key] = new
                states[-1] = top = new
                continue
            info: Any = methods[~act]
            if len(info) == 3:                  # one child, kept as it is, and a method: the commonest case
                gotos, method, spanned = info
                here = spans[-1]
                values[-1] = method(transformer, None if not spanned else base if here is None else here,
                                    [values[-1]])
                states[-1] = top = gotos[states[-2]]
                continue
            n, mode, take, inline, expand, gotos, method, spanned, name, plain = info
            if n:
                first = spans[-n]
                if first is None:
                    for first in spans[-n:]:
                        if first is not None:
                            break
                last = spans[-1]
                if last is None:
                    for last in reversed(spans[-n:]):
                        if last is not None:
                            break
                here = None if first is None else first & _HIGH | last & _LOW
            else:
                here = None
            if mode == _ONE:                    # the children lark's filter keeps (see ``_take``)
                children = [values[take]]
            elif mode == _SOME:
                children = [*take(values)]
            elif mode == _ALL:
                children = values[-n:] if n else []
            elif mode == _SPLICE:
                spliced: list = []
                for i in take:
                    if i >= 0:
                        spliced.append(values[i - n])
                    elif i == -1:
                        spliced.append(None)
                    elif spliced:
                        spliced += values[-2 - i - n]
                    else:       # the list of a left-recursive `_rule` grows in place (as in lark)
                        spliced = values[-2 - i - n]
                children = spliced
            else:
                children = [values[i - n] if i >= 0 else None for i in take]
            result: Any
            if plain:                           # a method given the span (the commonest case)
                result = method(transformer, base if here is None else here, children)
            elif inline:
                result = children               # spliced into the parent's children
            elif expand and len(children) == 1:
                result = children[0]
            elif method is None:
                result = Tree(name, children)
            elif not spanned:
                result = method(transformer, None, children)
            elif here is None:
                result = method(transformer, base, children)              # no text: Span(file=file)
            else:
                result = method(transformer, here, children)
            if n == 1:                          # the rule's one entry becomes the rule's
                states[-1] = top = gotos[states[-2]]
                values[-1] = result
            elif n:
                top = gotos[states[-n - 1]]
                states[-n:] = (top,)
                values[-n:] = (result,)
                spans[-n:] = (here,)
            else:
                top = gotos[top]
                push_state(top)
                push_value(result)
                push_span(here)
    # the end of the text: reduce until the rule is complete
    return _finish(t, states, values, spans, transformer, methods, end_state, base)


def _chain(t: Tables, acts: list, top: int, below: int) -> int:
    """Where a chain of ``?rule: child`` reductions from state ``top`` (over ``below``) ends for a terminal whose
    actions are ``acts``."""
    new, act = top, acts[top]
    while act is not None and act <= UNIT:
        new = t.gotos[UNIT - act][below]
        if new is None:
            raise Unsupported("no goto")
        act = acts[new]
    return new


def _finish(t: Tables, states: list, values: list, spans: list, transformer: Any, methods: list,  # noqa: C901 - parse's loop for the last token
            end_state: int, base: int) -> Any:
    """The reductions at the end of the text (the lookahead ``$END``), as in ``parse``; the finished result."""
    acts = t.by_symbol.get("$END")
    if acts is None:
        raise Unsupported("no end")
    while True:
        top = states[-1]
        if top == end_state:
            return values[-1]
        act = acts[top]
        if act is None or act >= 0:
            raise Unsupported("unexpected end")
        if act <= UNIT:
            states[-1] = _chain(t, acts, top, states[-2])
            continue
        r = ~act
        n = t.sizes[r]
        spots = [s for s in spans[-n:] if s is not None] if n else []
        children = values[-n:] if n else []
        if n:
            del states[-n:], values[-n:], spans[-n:]
        here = spots[0] & _HIGH | spots[-1] & _LOW if spots else None
        pick = t.picks[r]
        if pick is not None:
            spliced: list = []
            for i in pick:
                if i >= 0:
                    spliced.append(children[i])
                elif i == -1:
                    spliced.append(None)
                elif spliced:
                    spliced += children[-2 - i]
                else:
                    spliced = children[-2 - i]
            children = spliced
        result: Any
        if t.inlined[r]:
            result = children
        elif t.expand1[r] and len(children) == 1:
            result = children[0]
        else:
            method, spanned = methods[r][-4:-2] if len(methods[r]) == 10 else methods[r][1:]
            if method is None:
                result = Tree(t.names[r], children)
            elif not spanned:
                result = method(transformer, None, children)
            elif here is None:
                result = method(transformer, base, children)
            else:
                result = method(transformer, here, children)
        goto = t.gotos[r][states[-1]]
        if goto is None:
            raise Unsupported("no goto")
        states.append(goto)
        values.append(result)
        spans.append(here)
