"""Errors that involve files: imports (missing, cyclic), size and nesting limits, unreadable and missing specs."""

from __future__ import annotations

from pathlib import Path

import pytest

import archdsl
from archdsl.errors import ArchError, LimitError, ParseError, SpecImportError, UsageError
from archdsl.syntax.parser import MAX_NESTING, MAX_SOURCE_BYTES

MODEL = "model M() {\n  in x: [N]\n  out x\n}\n"
BLOCK = "block {name}() {{\n  in x: [N]\n  out x\n}}\n"


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work inside a fresh folder, so that diagnostics show short relative paths."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(folder: Path, name: str, text: str) -> str:
    """Write ``text`` to ``folder/name``; return the relative name."""
    (folder / name).write_text(text, encoding="utf-8")
    return name


def error_of(source: str, **params) -> ArchError:
    """The ArchError compiling ``source`` raises."""
    with pytest.raises(ArchError) as info:
        archdsl.compile(source, **params)
    return info.value


def test_two_file_import_cycle_names_the_chain(here: Path) -> None:
    """a imports b imports a: the message names both files and points at both imports."""
    write(here, "a.arch", 'import "b.arch"\n' + BLOCK.format(name="A"))
    write(here, "b.arch", 'import "a.arch"\n' + MODEL)
    exc = error_of("b.arch")
    assert isinstance(exc, SpecImportError)
    assert exc.render() == """\
a.arch:1:1: error: import cycle: b.arch -> a.arch -> b.arch
    1 | import "b.arch"
      | ^~~~~~~~~~~~~~~
  note: b.arch imports a.arch here (at b.arch:1:1)
    1 | import "a.arch"
      | ^~~~~~~~~~~~~~~
  hint: move the shared blocks into a third file both import"""


def test_three_file_import_cycle(here: Path) -> None:
    """The chain lists every file once, in import order, ending where it started."""
    write(here, "a.arch", 'import "b.arch"\n' + MODEL)
    write(here, "b.arch", 'import "c.arch"\n' + BLOCK.format(name="B"))
    write(here, "c.arch", 'import "a.arch"\n' + BLOCK.format(name="C"))
    exc = error_of("a.arch")
    assert exc.diagnostics[0].message == "import cycle: a.arch -> b.arch -> c.arch -> a.arch"
    assert str(exc.diagnostics[0].span) == "c.arch:1:1"
    assert [str(span) for _, span in exc.diagnostics[0].notes] == ["a.arch:1:1", "b.arch:1:1"]


def test_a_file_importing_itself(here: Path) -> None:
    """The shortest cycle."""
    write(here, "a.arch", 'import "a.arch"\n' + MODEL)
    assert error_of("a.arch").diagnostics[0].message == "import cycle: a.arch -> a.arch"


def test_missing_import(here: Path) -> None:
    """An import of a file that does not exist, with where it was looked for."""
    write(here, "m.arch", 'import "blocks/nope.arch"\n' + MODEL)
    exc = error_of("m.arch")
    assert isinstance(exc, SpecImportError)
    assert exc.render() == """\
m.arch:1:1: error: imported file 'blocks/nope.arch' not found (looked at blocks/nope.arch)
    1 | import "blocks/nope.arch"
      | ^~~~~~~~~~~~~~~~~~~~~~~~~
  hint: import paths are relative to the importing file; the shipped library is 'std/...'"""


def test_missing_std_import() -> None:
    """The shipped library has no such file."""
    exc = error_of('import "std/nope.arch"\n' + MODEL)
    assert isinstance(exc, SpecImportError)
    assert exc.diagnostics[0].message.startswith("imported file 'std/nope.arch' not found")


def test_huge_file_is_refused_before_reading(here: Path) -> None:
    """A file over the size limit is a LimitError at path:1:1, without an excerpt of it."""
    write(here, "big.arch", "# " + "x" * MAX_SOURCE_BYTES + "\n" + MODEL)
    exc = error_of("big.arch")
    assert isinstance(exc, LimitError)
    assert exc.render() == ("big.arch:1:1: error: spec file 'big.arch' is larger than 4 MiB\n"
                            "  hint: split it into files that import each other")


def test_huge_text_is_refused() -> None:
    """The same limit for spec text given directly."""
    exc = error_of("# " + "x" * MAX_SOURCE_BYTES + "\n" + MODEL)
    assert isinstance(exc, LimitError)
    assert exc.diagnostics[0].message == "spec file is larger than 4 MiB"


def test_deeply_nested_brackets(here: Path) -> None:
    """Nesting beyond the limit is refused before parsing; the excerpt is cut around the caret."""
    depth = MAX_NESTING + 50
    write(here, "deep.arch", "let a = " + "[" * depth + "]" * depth + "\n" + MODEL)
    exc = error_of("deep.arch")
    assert isinstance(exc, LimitError)
    cut = "[" * 75 + "]" * 25
    assert exc.render() == f"""\
deep.arch:1:209: error: brackets nest deeper than 200 levels
    1 | …{cut}…
      |                           ^
  hint: split the expression into named values"""


def test_brackets_in_comments_and_strings_do_not_count() -> None:
    """Only real brackets nest: a comment or a string full of them is fine."""
    text = "# " + "(" * 500 + "\nlet s = \"" + "[" * 500 + "\"\n" + MODEL
    assert len(archdsl.compile(text).nodes) == 0


def test_binary_file(here: Path) -> None:
    """A file that is not UTF-8 text."""
    (here / "bin.arch").write_bytes(b"\xff\xfe\x00model")
    exc = error_of("bin.arch")
    assert isinstance(exc, SpecImportError)
    assert exc.diagnostics[0].message == "spec file 'bin.arch' cannot be read as UTF-8 text"


def test_byte_order_mark_is_ignored(here: Path) -> None:
    """Editors on Windows may start a UTF-8 file with a byte order mark."""
    write(here, "bom.arch", "\ufeff" + MODEL)
    assert archdsl.compile("bom.arch").name == "M"


def test_missing_spec_file_is_a_usage_error(here: Path) -> None:
    """Naming a file that does not exist is a usage error (exit status 2), not a spec error."""
    exc = error_of("nope.arch")
    assert isinstance(exc, UsageError)
    assert exc.exit_code == 2
    assert exc.render() == "error: no such spec file: nope.arch\n  hint: check the path (relative to the current folder)"


def test_parse_error_in_an_imported_file(here: Path) -> None:
    """Errors inside an import point into that file, with its own excerpt."""
    write(here, "lib.arch", "block B() {\n  in x: [N]\n  out x $\n}\n")
    write(here, "m.arch", 'import "lib.arch"\n' + MODEL)
    exc = error_of("m.arch")
    assert isinstance(exc, ParseError)
    assert exc.render() == """\
lib.arch:3:9: error: unexpected character '$'
    3 |   out x $
      |         ^
  hint: remove it: .arch text uses names, numbers, strings, brackets and the operators of the grammar"""
