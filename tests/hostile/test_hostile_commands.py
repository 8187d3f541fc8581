"""The hostile suite for the commands that write outputs: simplify -o OUTDIR, export -o FILE.onnx, align -o.

Each new writing command gets the same treatment: FILE that is not a spec, foreign files under --force,
concurrent writers, special files and symlinks as targets, hostile weights.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from archdsl.cli import main
from tests.hostile._hostile import cli, one_paragraph

REPARAM = """\
model R() {
  in x: [N, 3, H, W]
  b = reparam {
    a = seq[Conv2d(4, 3, padding=1), BatchNorm2d()]
    c = seq[Conv2d(4, 1), BatchNorm2d()]
  }
  out x |> b |> relu
}
"""
SIMPLIFY_FILES = ["deploy.arch", "graph.json", "model.py", "report.txt", "weights.safetensors"]


@pytest.fixture()
def rep(here: Path) -> Path:
    (here / "rep.arch").write_text(REPARAM)
    return here


def test_simplify_writes_its_folder_once(rep: Path, capsys) -> None:
    assert cli(capsys, "simplify", "rep.arch", "-o", "OUT")[0] == 0
    assert sorted(p.name for p in (rep / "OUT").iterdir()) == SIMPLIFY_FILES
    code, _, err = cli(capsys, "simplify", "rep.arch", "-o", "OUT")
    assert code == 2 and "already exists" in err
    one_paragraph(err)
    assert cli(capsys, "simplify", "rep.arch", "-o", "OUT", "--force", "--format", "json")[0] == 0
    assert "report.json" in {p.name for p in (rep / "OUT").iterdir()}       # the other report kind is replaced
    assert sorted(p.name for p in rep.iterdir()) == ["OUT", "rep.arch", "small.arch"]


@pytest.mark.parametrize("plant", ["subdir", "notes"])
def test_simplify_force_keeps_foreign_files(rep: Path, capsys, plant: str) -> None:
    assert cli(capsys, "simplify", "rep.arch", "-o", "OUT")[0] == 0
    if plant == "subdir":
        (rep / "OUT" / "deploy.arch").unlink()
        (rep / "OUT" / "deploy.arch").mkdir()
        (rep / "OUT" / "deploy.arch" / "thesis.tex").write_text("mine")
    else:
        (rep / "OUT" / "notes.md").write_text("mine")
    code, _, err = cli(capsys, "simplify", "rep.arch", "-o", "OUT", "--force")
    assert code == 2 and "did not write" in err
    assert (rep / "OUT" / ("deploy.arch/thesis.tex" if plant == "subdir" else "notes.md")).read_text() == "mine"


def test_simplify_over_a_build_output_and_back(rep: Path, capsys) -> None:
    """--force may replace an earlier archdsl output of another command only if it holds just that command's names."""
    assert cli(capsys, "build", "rep.arch", "-o", "OUT")[0] == 0
    assert cli(capsys, "simplify", "rep.arch", "-o", "OUT", "--force")[0] == 0
    code, _, err = cli(capsys, "build", "rep.arch", "-o", "OUT", "--force")
    assert code == 2 and "deploy.arch" in err                     # build never deletes simplify's extra files
    assert sorted(p.name for p in (rep / "OUT").iterdir()) == SIMPLIFY_FILES


def test_concurrent_simplify_one_wins(rep: Path, capsys) -> None:
    codes: list[int] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait(10)
        codes.append(main(["simplify", "rep.arch", "-o", "OUT"]))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    capsys.readouterr()
    assert sorted(codes) == [0, 2]
    assert sorted(p.name for p in rep.iterdir()) == ["OUT", "rep.arch", "small.arch"]


@pytest.mark.parametrize("tamper", ["int64", "bool", "missing", "extra", "shape", "junk", "nofile", "folder"])
def test_simplify_with_hostile_weights(rep: Path, capsys, tamper: str) -> None:
    assert cli(capsys, "build", "rep.arch", "-o", "B")[0] == 0
    weights = rep / "B" / "weights.safetensors"
    tensors = load_file(weights)
    name = next(k for k in tensors if k.endswith("weight"))
    if tamper in ("int64", "bool"):
        tensors[name] = tensors[name].to(getattr(torch, tamper))
    elif tamper == "missing":
        del tensors[name]
    elif tamper == "extra":
        tensors["evil"] = torch.zeros(1)
    elif tamper == "shape":
        tensors[name] = torch.zeros(7)
    if tamper == "junk":
        weights.write_bytes(b"\x00" * 40)
    elif tamper not in ("nofile", "folder"):
        save_file(tensors, weights)
    arg = {"nofile": str(rep / "nope.safetensors"), "folder": str(rep / "B")}.get(tamper, str(weights))
    code, _, err = cli(capsys, "simplify", "rep.arch", "--weights", arg, "-o", "OUT")
    assert code == 2, err
    one_paragraph(err)
    assert not (rep / "OUT").exists()


@pytest.mark.parametrize("target", ["x" * 300, "small.arch/OUT", "/proc/archdsl"])
def test_simplify_output_errors(rep: Path, capsys, target: str) -> None:
    code, _, err = cli(capsys, "simplify", "rep.arch", "-o", target)
    assert code == 2
    one_paragraph(err)
    assert sorted(p.name for p in rep.iterdir()) == ["rep.arch", "small.arch"]


# -- export -o FILE.onnx ---------------------------------------------------------------------------------

onnx = pytest.importorskip("onnx")


def test_export_refuses_to_clobber(rep: Path, capsys) -> None:
    assert cli(capsys, "export", "rep.arch", "-o", "m.onnx")[0] == 0
    before = (rep / "m.onnx").read_bytes()
    code, _, err = cli(capsys, "export", "rep.arch", "-o", "m.onnx", "--seed", "3")
    assert code == 2 and "already exists" in err
    assert (rep / "m.onnx").read_bytes() == before


@pytest.mark.parametrize("target", ["x" * 300 + ".onnx", "small.arch/m.onnx", "DIR", "/proc/m.onnx"])
def test_export_output_errors(rep: Path, capsys, target: str) -> None:
    (rep / "DIR").mkdir()
    code, _, err = cli(capsys, "export", "rep.arch", "-o", target)
    assert code == 2, err
    one_paragraph(err)
    assert sorted(p.name for p in rep.iterdir()) == ["DIR", "rep.arch", "small.arch"]


def test_export_keeps_a_users_data_file(rep: Path, capsys) -> None:
    (rep / "m.onnx.data").write_text("the user's own file")
    code, _, _ = cli(capsys, "export", "rep.arch", "-o", "m.onnx", "--external-data")
    assert code == 2 and (rep / "m.onnx.data").read_text() == "the user's own file"


def test_export_force_through_a_symlink_keeps_it(rep: Path, capsys) -> None:
    (rep / "real.onnx").write_text("mine")
    (rep / "m.onnx").symlink_to("real.onnx")
    assert cli(capsys, "export", "rep.arch", "-o", "m.onnx", "--force")[0] == 0
    assert (rep / "m.onnx").is_symlink() and onnx.load(str(rep / "real.onnx")).graph.node


def test_concurrent_exports_one_wins(rep: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    from archdsl.backends.onnx import export as onnx_export

    barrier = threading.Barrier(2)
    real = onnx_export.check

    def slow_check(path):            # both writers are past the exists() test before either commits
        barrier.wait(10)
        return real(path)

    monkeypatch.setattr(onnx_export, "check", slow_check)
    codes: list[int] = []
    threads = [threading.Thread(target=lambda: codes.append(main(["export", "rep.arch", "-o", "m.onnx"])))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    capsys.readouterr()
    assert sorted(codes) == [0, 2]


def test_no_temp_litter_after_a_failed_export(rep: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    from archdsl.backends.onnx import export as onnx_export

    def broken(path):
        raise OSError(28, os.strerror(28), str(path))

    monkeypatch.setattr(onnx_export, "check", broken)
    code, _, err = cli(capsys, "export", "rep.arch", "-o", "m.onnx")
    assert code == 2 and "No space left" in err
    assert sorted(p.name for p in rep.iterdir()) == ["rep.arch", "small.arch"]


# -- align -o OUT.safetensors ------------------------------------------------------------------------------

def test_align_output_is_never_clobbered(here: Path, capsys) -> None:
    for seed in (0, 1):
        assert cli(capsys, "build", "small.arch", "-o", f"B{seed}", "--seed", str(seed))[0] == 0
    a, b = "B0/weights.safetensors", "B1/weights.safetensors"
    (here / "mine.safetensors").write_text("the user's file")
    code, _, err = cli(capsys, "align", a, b, "--spec", "small.arch", "-o", "mine.safetensors")
    assert code == 2 and "already exists" in err
    assert (here / "mine.safetensors").read_text() == "the user's file"
    (here / "link.safetensors").symlink_to("target.safetensors")
    assert cli(capsys, "align", a, b, "--spec", "small.arch", "-o", "link.safetensors", "--force")[0] == 0
    assert (here / "link.safetensors").is_symlink() and load_file(here / "target.safetensors")
    assert cli(capsys, "align", a, b, "--spec", "small.arch", "-o", "new.safetensors")[0] == 0
    assert not [p.name for p in here.iterdir() if p.name.startswith(".")]
