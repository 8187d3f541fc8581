"""The one exception family users ever see, and compiler-style diagnostics."""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:          # annotations only: importing the error family must not load pydantic
    from archdsl.ir.types import Span


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a spec: what, where, and how to fix it."""

    message: str
    span: Span | None = None
    hint: str | None = None
    severity: str = "error"
    notes: tuple[tuple[str, Span | None], ...] = field(default_factory=tuple)

    def render(self, sources: dict[str, str] | None = None) -> str:
        """Print like a compiler: ``path:line:col: error: ...``, the source line and a caret."""
        where = f"{_visible(str(self.span))}: " if self.span else ""
        lines = [f"{where}{self.severity}: {_visible(self.message)}"]
        lines += _excerpt(self.span, sources)
        for text, span in self.notes:
            lines.append(f"  note: {_visible(text)}" + (f" (at {_visible(str(span))})" if span else ""))
            lines += _excerpt(span, sources)
        if self.hint:
            lines.append(f"  hint: {_visible(self.hint)}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        """A dict for ``--format json``."""
        span = self.span.model_dump() if self.span else None
        return {"severity": self.severity, "message": self.message, "span": span, "hint": self.hint,
                "notes": [{"message": t, "span": s.model_dump() if s else None} for t, s in self.notes]}


def _visible(text: str) -> str:
    """``text`` with control characters escaped (``\\x1b``): a file name or value cannot break the paragraph
    or send escape sequences to the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


MAX_EXCERPT_SOURCE = 4 * 2**20   # files larger than this (the spec size limit) are not read back for excerpts
EXCERPT_WIDTH = 100     # longest source excerpt printed under a diagnostic; longer lines are cut around the caret


def _excerpt(span: Span | None, sources: dict[str, str] | None) -> list[str]:
    """The source line of ``span`` with a caret line under it (cut to EXCERPT_WIDTH around the caret)."""
    if span is None:
        return []
    text = (sources or {}).get(span.file)
    if text is None:
        text = _read_source(span.file)
    if text is None:
        return []
    lines = text.split("\n")      # the lexer counts lines at \n only (not at form feeds or U+2028)
    if not 1 <= span.line <= len(lines):
        return []
    line = _UNPRINTABLE.sub(" ", lines[span.line - 1].removesuffix("\r"))   # one column per character
    col = max(0, span.column - 1)
    width = span.end_column - span.column if span.end_line == span.line else len(line) - col
    start = 0
    if len(line) > EXCERPT_WIDTH:
        start = max(0, min(col - EXCERPT_WIDTH // 4, len(line) - EXCERPT_WIDTH))
        head, tail = ("…" if start else ""), ("…" if start + EXCERPT_WIDTH < len(line) else "")
        line = head + line[start:start + EXCERPT_WIDTH] + tail
        col += len(head) - start
    width = max(1, min(width, len(line) - col))
    caret = " " * col + "^" + "~" * (width - 1)
    gutter = f"{span.line:>5} | "
    return [gutter + line.rstrip(), " " * (len(gutter) - 2) + "| " + caret]


_UNPRINTABLE = re.compile(r"[^\S ]|[\x00-\x1f\x7f-\x9f\u2028\u2029]")   # tabs, form feeds, controls -> one space


def _read_source(path: str) -> str | None:
    """A spec's text for an excerpt, read from disk; None for pseudo-files and files too large to be specs."""
    if path.startswith("<"):
        return None
    try:
        if os.path.getsize(path) > MAX_EXCERPT_SOURCE:
            return None
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


MAX_ERRORS = 20      # independent errors reported in one run (as rustc does); the rest wait for the next run


class ArchError(Exception):
    """Root of every error archdsl raises on bad input; carries one or more Diagnostics."""

    exit_code = 1

    def __init__(self, diagnostics: Diagnostic | list[Diagnostic] | str, sources: dict[str, str] | None = None):
        if isinstance(diagnostics, str):
            diagnostics = Diagnostic(diagnostics)
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        self.sources = sources or {}
        super().__init__(self.render())

    def render(self) -> str:
        """All diagnostics, compiler-style."""
        return "\n".join(d.render(self.sources) for d in self.diagnostics)

    def to_json(self) -> str:
        """All diagnostics as a JSON document."""
        return json.dumps({"diagnostics": [d.to_json() for d in self.diagnostics]}, indent=2)


class ParseError(ArchError):
    """The text is not valid .arch or YAML."""


class ElaborationError(ArchError):
    """A name, argument, parameter or composition problem found while expanding blocks."""


class ShapeError(ArchError):
    """Shapes or dtypes do not fit an op's rule."""


class VerifyError(ArchError):
    """The IR graph is malformed (dangling, unused, cyclic, mistyped)."""


class SpecImportError(ArchError):
    """An import is missing or cyclic."""


class LimitError(ArchError):
    """A spec asks for more than archdsl allows (repeat count, depth, file size)."""


class UsageError(ArchError):
    """The command line or API call itself is wrong."""

    exit_code = 2


class ArchWarning(UserWarning):
    """A located problem that does not stop a build (genuinely dead code, ...), rendered like an error.

    ``archdsl check`` and ``archdsl build`` print every warning; ``--strict`` turns them into errors. From the
    Python API they arrive through :mod:`warnings` unless collected with :func:`collect_warnings`.
    """

    def __init__(self, diagnostic: Diagnostic, sources: dict[str, str] | None = None, model: str | None = None):
        self.diagnostic = replace(diagnostic, severity="warning")
        self.sources = sources or {}
        self.model = model          # the model being elaborated when it was found (None: not known)
        super().__init__(self.render())

    def render(self) -> str:
        """The warning, compiler-style (``path:line:col: warning: ...``)."""
        return self.diagnostic.render(self.sources)


_collecting: ContextVar[list[ArchWarning] | None] = ContextVar("archdsl_warnings", default=None)


@contextmanager
def collect_warnings() -> Iterator[list[ArchWarning]]:
    """Collect the ArchWarnings raised inside the ``with`` block into the yielded list (not :mod:`warnings`)."""
    found: list[ArchWarning] = []
    token = _collecting.set(found)
    try:
        yield found
    finally:
        _collecting.reset(token)


def warn(diagnostic: Diagnostic, sources: dict[str, str] | None = None, model: str | None = None) -> None:
    """Report a warning to the innermost :func:`collect_warnings`, else through :func:`warnings.warn`."""
    found = _collecting.get()
    if found is not None:
        found.append(ArchWarning(diagnostic, sources, model))
    else:
        warnings.warn(ArchWarning(diagnostic, sources, model), stacklevel=3)


class ErrorCollector:
    """Independent errors gathered in one run, up to MAX_ERRORS, raised together as the first one's class.

    ``with collector.guard():`` around one independent unit (a model, a block, a statement) records its
    ArchError and carries on; past the cap the collected errors are raised at once.
    """

    def __init__(self, cap: int = MAX_ERRORS):
        self.cap = cap
        self.errors: list[ArchError] = []
        self.failed = 0         # units that failed, their error recorded now or before (a block applied twice)

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Record an ArchError raised inside instead of propagating it (UsageError still propagates)."""
        try:
            yield
        except UsageError:
            raise
        except ArchError as exc:
            self.errors.append(exc)
            if self.count >= self.cap:
                self.raise_if_any()

    @property
    def count(self) -> int:
        """Diagnostics collected so far."""
        return sum(len(e.diagnostics) for e in self.errors)

    def raise_if_any(self) -> None:
        """Raise every collected diagnostic (at most ``cap``) as one error of the first error's class."""
        if not self.errors:
            return
        first = self.errors[0]
        if len(self.errors) == 1:
            raise first
        sources = {k: v for e in self.errors for k, v in e.sources.items()}
        diagnostics = [d for e in self.errors for d in e.diagnostics][:self.cap]
        raise type(first)(diagnostics, sources) from first


class OpError(ValueError):
    """Raised by op shape rules and attribute checks; the elaborator adds the span."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint
