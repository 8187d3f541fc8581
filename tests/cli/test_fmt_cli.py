"""`archdsl fmt`: canonical .arch output, conversion to YAML and back to the same IR, --check."""

from __future__ import annotations

from pathlib import Path

import archdsl
from archdsl.cli import main
from archdsl.ir.printer import print_graph

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_block.arch"


def test_fmt_is_idempotent(tmp_path: Path, capsys) -> None:
    assert main(["fmt", str(EXAMPLE)]) == 0
    once = capsys.readouterr().out
    first = tmp_path / "once.arch"
    first.write_text(once)
    assert main(["fmt", str(first), "--check"]) == 0
    assert main(["fmt", str(EXAMPLE), "--check"]) == 0   # shipped files are formatted, comments and all
    assert once == EXAMPLE.read_text() and "# Writing your own block" in once


def test_fmt_check_takes_folders_and_names_each_unformatted_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.arch").write_text(EXAMPLE.read_text())
    (tmp_path / "sub" / "b.arch").write_text("model  M() { in x: [N]\n out x }  # b\n")
    (tmp_path / "notes.txt").write_text("not a spec")
    assert main(["fmt", "--check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "b.arch: would be reformatted" in err and "a.arch" not in err
    assert main(["fmt", "--in-place", str(tmp_path)]) == 0
    assert (tmp_path / "sub" / "b.arch").read_text() == "model M() {\n  in x: [N]\n  out x\n}  # b\n"
    assert main(["fmt", "--check", str(tmp_path / "a.arch"), str(tmp_path / "sub")]) == 0


def test_fmt_several_files_to_stdout_is_a_usage_error(tmp_path: Path, capsys) -> None:
    assert main(["fmt", str(EXAMPLE), str(EXAMPLE)]) == 2
    assert "--check or --in-place" in capsys.readouterr().err


def test_fmt_to_yaml_and_back_gives_the_same_ir(tmp_path: Path) -> None:
    yaml_file, arch_file = tmp_path / "spec.yaml", tmp_path / "back.arch"
    assert main(["fmt", str(EXAMPLE), "--to", "yaml", "-o", str(yaml_file)]) == 0
    assert main(["fmt", str(yaml_file), "--to", "arch", "-o", str(arch_file)]) == 0
    graphs = [print_graph(archdsl.compile(p)) for p in (EXAMPLE, yaml_file, arch_file)]
    assert graphs[0] == graphs[1] == graphs[2]


def test_fmt_reports_syntax_errors_with_exit_1(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.arch"
    bad.write_text("model M() {\n  in x: [N]\n  out x +\n}\n")
    assert main(["fmt", str(bad)]) == 1
    assert "bad.arch:4:1: error" in capsys.readouterr().err


def test_fmt_in_place_refuses_a_form_change(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "a.arch"
    spec.write_text(EXAMPLE.read_text())
    assert main(["fmt", str(spec), "--to", "yaml", "--in-place"]) == 2


def test_check_rejects_a_parameter_no_model_declares(capsys) -> None:
    assert main(["check", str(EXAMPLE), "--param", "num_clases=3"]) == 2
    assert "num_clases" in capsys.readouterr().err
