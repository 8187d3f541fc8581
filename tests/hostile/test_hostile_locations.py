"""Family 6: every spec error points at the right place; imports cannot reach arbitrary system files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import archdsl
from archdsl.errors import ArchError, LimitError, SpecImportError
from tests.hostile._hostile import cli, one_paragraph

MODEL = "model M() {\n  in x: [N, 3]\n  out x\n}\n"


def error_of(source, **params) -> ArchError:
    with pytest.raises(ArchError) as info:
        archdsl.compile(source, **params)
    return info.value


@pytest.mark.parametrize("line", [3, 7, 12])
def test_nest_too_deeply_points_at_the_line(line: int) -> None:
    """Long expressions are refused on their own line, not at 1:1."""
    body = "".join(f"  y{i} = x\n" for i in range(line - 3))
    source = "model M() {\n  in x: [N, 3]\n" + body + "  out x" + " + x" * 600 + "\n}\n"
    span = error_of(source).diagnostics[0].span
    assert (span.line, span.column > 1) == (line, True)


@pytest.mark.parametrize("sep", ["\f", "\u2028", "\u2029", "\v", "\x1c", "\x85", "\r"])
def test_odd_line_separators_in_comments_keep_the_caret_in_place(sep: str) -> None:
    source = f"model M() {{\n  # a comment with a {sep} inside\n  in x: [N, 3]\n  out relu(xs)\n}}\n"
    text = error_of(source).render()
    assert text.splitlines()[:3] == ["<string>:4:12: error: unknown name 'xs'", "    4 |   out relu(xs)",
                                     "      |            ^~"], text


def test_odd_characters_on_the_error_line_keep_the_caret_aligned() -> None:
    text = error_of("model M() {\n  in x: [N, 3]\n  out\tx +\fxs\n}\n").render()
    line, caret = text.splitlines()[1:3]
    assert line.index("xs") == caret.index("^"), text


def test_name_clash_found_late_has_a_location() -> None:
    """A layer name that cannot exist in torch is found by check, with file:line:col (exit 1, not 2)."""
    exc = error_of("model M() {\n  in x: [N, 3]\n  cuda = Linear(4)\n  out x |> cuda\n}\n")
    assert exc.exit_code == 1 and str(exc.diagnostics[0].span).startswith("<string>:3:")


@pytest.mark.parametrize("target", ["/proc/version", "/etc/passwd", "std/../../../../../../etc/hostname",
                                    "../outside.arch", "std/../__init__.py", "/dev/zero", "sub/../../outside.arch"])
def test_imports_stay_in_the_spec_tree_and_std(tmp_path: Path, target: str) -> None:
    (tmp_path / "outside.arch").write_text("let z = 1\n")
    (tmp_path / "proj" / "sub").mkdir(parents=True)
    spec = tmp_path / "proj" / "m.arch"
    spec.write_text(f'import "{target}"\n' + MODEL)
    exc = error_of(spec)
    assert isinstance(exc, SpecImportError) and "reaches outside" in exc.diagnostics[0].message
    assert str(exc.diagnostics[0].span).endswith("m.arch:1:1")
    text = exc.render()
    assert "Linux version" not in text and "root:" not in text    # never an excerpt of a system file


def test_symlink_out_of_the_tree_is_refused(tmp_path: Path) -> None:
    (tmp_path / "outside.arch").write_text("let z = 1\n")
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "lib.arch").symlink_to(tmp_path / "outside.arch")
    (tmp_path / "proj" / "m.arch").write_text('import "lib.arch"\n' + MODEL)
    assert isinstance(error_of(tmp_path / "proj" / "m.arch"), SpecImportError)


def test_imports_inside_the_tree_and_explicit_search_paths(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "lib.arch").write_text("block B() {\n  in x: [N, 3]\n  out relu(x)\n}\n")
    (tmp_path / "proj" / "sub").mkdir(parents=True)
    (tmp_path / "proj" / "sub" / "inner.arch").write_text("let z = 1\n")
    spec = tmp_path / "proj" / "m.arch"
    spec.write_text('import "sub/inner.arch"\nimport "std/blocks.arch"\nimport "../library/lib.arch"\n'
                    "model M() {\n  in x: [N, 3]\n  b = B()\n  out x |> b\n}\n")
    code, _, err = cli(capsys, "check", str(spec))
    assert code == 1 and "reaches outside" in err and "-I FOLDER" in err
    one_paragraph(err)
    code, out, err = cli(capsys, "check", str(spec), "-I", str(tmp_path / "library"))
    assert code == 0, err
    monkeypatch.setenv("ARCHDSL_IMPORT_PATH", str(tmp_path / "library"))
    assert archdsl.compile(spec).name == "M"


def test_text_specs_import_relative_to_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lib.arch").write_text("let z = 1\n")
    assert archdsl.compile('import "lib.arch"\n' + MODEL).name == "M"
    exc = error_of('import "/proc/version"\n' + MODEL)
    assert isinstance(exc, SpecImportError) and "Linux" not in exc.render()


def test_zoo_specs_still_import_each_other() -> None:
    assert archdsl.compile("seresnet50").name == "seresnet50"
    with pytest.raises(ArchError, match="did you mean 'seresnet50'"):
        archdsl.compile("se_resnet50")


def test_deep_blocks_error_points_into_the_innermost_block() -> None:
    text = "".join(f"block B{i}() {{\n  in x: [N, 3]\n  b = B{i + 1}()\n  out x |> b\n}}\n" for i in range(70))
    text += "block B70() {\n  in x: [N, 3]\n  out x\n}\n" + "model M() {\n  in x: [N, 3]\n  b = B0()\n  out x |> b\n}\n"
    exc = error_of(text)
    assert isinstance(exc, LimitError) and exc.diagnostics[0].span.line > 1
    assert os.linesep not in exc.diagnostics[0].message


@pytest.mark.parametrize("target", ["x" * 5000 + ".arch", "a\0b.arch", "sub/" * 2000 + "a.arch"])
def test_unrepresentable_import_paths(tmp_path: Path, target: str) -> None:
    spec = tmp_path / "m.arch"
    spec.write_text(f'import "{target}"\n' + MODEL)
    exc = error_of(spec)
    assert isinstance(exc, SpecImportError) and "not found" in exc.diagnostics[0].message
    one_paragraph(exc.render())
    assert len(exc.render()) < 1000


@pytest.mark.parametrize("source", ["spec.txt", "", "   ", "x" * 5000, "a\0b", "-", "resnet5", Path("x" * 5000),
                                    Path("/etc"), "y" * 300 + ".arch"])
def test_api_sources_that_name_nothing(source) -> None:
    exc = error_of(source)
    assert exc.exit_code == 2 and "no such spec file" in exc.diagnostics[0].message
    one_paragraph(exc.render())


def test_control_characters_in_messages_are_escaped() -> None:
    """A file name with an escape sequence or newline cannot split the paragraph or colour the terminal."""
    exc = error_of(Path("evil\x1b[31m\nname.arch"))
    text = exc.render()
    message = text.split("\n  hint: ")[0]          # the hint is a paragraph line of its own
    assert "\x1b" not in text and "\n" not in message and "\\x1b[31m\\nname.arch" in message
