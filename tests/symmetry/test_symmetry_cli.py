"""`archdsl symmetries` and `archdsl align` from the command line."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file, save_file

from archdsl.cli import main
from tests.symmetry.helpers import SMALL, harness, spec


def test_text_lists_classes_blocks_and_pins(capsys) -> None:
    assert main(["symmetries", str(SMALL), "-m", "grouped"]) == 0
    out = capsys.readouterr().out
    assert "grouped: " in out and "b0" in out and "blocks of" in out and "pinned: graph output 'out'" in out


def test_both_spellings_and_json_formats(capsys) -> None:
    assert main(["symmetry", str(SMALL), "-m", "mlp", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["size"] for c in data["classes"]] == [16, 12, 9]
    assert main(["symmetries", str(SMALL), "-m", "mlp", "--format", "rebasin"]) == 0
    assert "perm_to_axes" in json.loads(capsys.readouterr().out)
    assert main(["symmetries", str(SMALL), "-m", "mlp", "--format", "layers"]) == 0
    assert "weights" in json.loads(capsys.readouterr().out)


def test_explain_prints_the_chain_with_source_lines(capsys) -> None:
    assert main(["symmetries", str(SMALL), "-m", "mlp", "--explain", "c1"]) == 0
    out = capsys.readouterr().out
    assert "created by linear 'fc2'" in out and "fc2 = Linear(12)" in out and "constrained by tanh" in out


def test_unknown_class_and_bad_check_are_usage_errors(capsys) -> None:
    assert main(["symmetries", str(SMALL), "-m", "mlp", "--explain", "c99"]) == 2
    assert "no symmetry class 'c99'" in capsys.readouterr().err
    assert main(["symmetries", str(SMALL), "-m", "mlp", "--check", "-1"]) == 2


def test_check_runs_the_numbers(capsys) -> None:
    assert main(["symmetries", str(SMALL), "-m", "segments", "--check", "2"]) == 0
    assert "(ok)" in capsys.readouterr().out


def test_align_writes_b_permuted_to_match_a(tmp_path, capsys) -> None:
    s, h = spec("mlp"), harness("mlp")
    a = {k: v.float() for k, v in h.state.items()}
    b = {k: v.contiguous() for k, v in s.apply(a, s.sample(3, ("perm",))).items()}
    save_file(a, tmp_path / "a.safetensors")
    save_file(b, tmp_path / "b.safetensors")
    out = tmp_path / "b_aligned.safetensors"
    args = ["align", str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"), "--spec", str(SMALL),
            "-m", "mlp", "-o", str(out), "--interpolate", "2"]
    assert main(args) == 0
    aligned = load_file(out)
    assert all(torch.equal(aligned[k], a[k]) for k in a)
    assert "hidden units moved" in capsys.readouterr().out
    assert main(args) == 2                                          # never overwrites without --force
    assert "exists" in capsys.readouterr().err


def test_align_refuses_weights_of_another_model(tmp_path, capsys) -> None:
    save_file({"x": torch.zeros(2)}, tmp_path / "a.safetensors")
    assert main(["align", str(tmp_path / "a.safetensors"), str(tmp_path / "a.safetensors"), "--spec", str(SMALL),
                 "-m", "mlp", "-o", str(tmp_path / "o.safetensors")]) == 2
    assert "missing" in capsys.readouterr().err
