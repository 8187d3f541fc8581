"""ArchWarning (located, non-fatal) and ErrorCollector (several independent errors in one run, capped)."""

from __future__ import annotations

import pytest

from archdsl.errors import (
    MAX_ERRORS,
    ArchWarning,
    Diagnostic,
    ElaborationError,
    ErrorCollector,
    ShapeError,
    UsageError,
    collect_warnings,
    warn,
)
from archdsl.ir.types import Span

SOURCE = "model M() {\n  in x: [N]\n  y = relu(x)\n  out x\n}\n"
WHERE = Span(line=3, column=3, end_line=3, end_column=14)


def test_a_warning_renders_like_an_error() -> None:
    """Same format as errors, severity 'warning', with the excerpt and hint."""
    w = ArchWarning(Diagnostic("value 'y' is never used", WHERE, "remove it"), {"<string>": SOURCE})
    assert w.render() == """\
<string>:3:3: warning: value 'y' is never used
    3 |   y = relu(x)
      |   ^~~~~~~~~~~
  hint: remove it"""
    assert str(w) == w.render() and w.diagnostic.severity == "warning"


def test_warnings_reach_python_warnings_when_nobody_collects() -> None:
    """From the API a warning is a Python warning (a UserWarning subclass) users can filter."""
    with pytest.warns(ArchWarning, match="never used"):
        warn(Diagnostic("value 'y' is never used", WHERE))


def test_collect_warnings_takes_them_and_nests() -> None:
    """The innermost collector gets the warning; nothing reaches :mod:`warnings` (pytest would fail here)."""
    with collect_warnings() as outer:
        warn(Diagnostic("first", WHERE), model="M")
        with collect_warnings() as inner:
            warn(Diagnostic("second", WHERE))
    assert [w.diagnostic.message for w in outer] == ["first"] and outer[0].model == "M"
    assert [w.diagnostic.message for w in inner] == ["second"]


def _fail(cls: type, message: str) -> None:
    raise cls(Diagnostic(message, WHERE))


def test_collector_raises_all_as_the_first_class() -> None:
    """Independent errors come out together, in order, as one error of the first one's class."""
    errors = ErrorCollector()
    with errors.guard():
        _fail(ShapeError, "one")
    with errors.guard():
        _fail(ElaborationError, "two")
    with errors.guard():
        pass
    with pytest.raises(ShapeError) as info:
        errors.raise_if_any()
    assert [d.message for d in info.value.diagnostics] == ["one", "two"]


def test_collector_stops_at_the_cap() -> None:
    """Past MAX_ERRORS the run stops: the collected errors are raised at once, no more work is done."""
    errors = ErrorCollector()
    reached = 0
    with pytest.raises(ElaborationError) as info:
        for i in range(3 * MAX_ERRORS):
            with errors.guard():
                reached = i
                _fail(ElaborationError, f"error {i}")
    assert len(info.value.diagnostics) == MAX_ERRORS and reached == MAX_ERRORS - 1


def test_usage_errors_are_not_collected() -> None:
    """A wrong command line is not one of many spec errors: it propagates at once."""
    errors = ErrorCollector()
    with pytest.raises(UsageError):
        with errors.guard():
            _fail(UsageError, "bad flag")
    errors.raise_if_any()       # nothing collected
