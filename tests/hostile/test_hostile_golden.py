"""Golden renderings of the hardening messages (whole text, so wording, location and excerpt changes show)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile._hostile import cli

CASES = {
    "clash.arch": "model M() {\n  in x: [N, 3]\n  training = Linear(4)\n  out x |> training\n}\n",
    "big.arch": "model Big() {\n  in x: [N, 1000000]\n  fc = Linear(1000000)\n  out x |> fc\n}\n",
    "imp.arch": 'import "/proc/version"\nmodel M() {\n  in x: [N, 3]\n  out x\n}\n',
    "split.arch": "model S() {\n  in x: [N, 20000]\n  out x |> split(1, 1) |> first\n}\n",
    "init.arch": 'model P() {\n  in x: [N, 3]\n  p = Parameter((3,), "uniform(a=1, b=0)")\n  out x + p\n}\n',
}

GOLDEN = [
    (["check", "resnet5"], 2, """\
error: no such spec file or zoo model: resnet5
  hint: did you mean 'resnet50'?
"""),
    (["build", "-", "-o", "OUT"], 2, """\
error: no such spec file or zoo model: -
  hint: give a .arch or .yaml file, or a model name from archdsl.zoo.names()
"""),
    (["check", "clash.arch"], 1, """\
clash.arch:3:14: error: layer name 'training' (in 'training') clashes with an attribute of torch.nn.Module
    3 |   training = Linear(4)
      |              ^~~~~~~~~
  hint: rename the layer
"""),
    (["check", "big.arch"], 1, """\
big.arch:3:8: error: the model's parameters need 3.6 TiB, more than the limit of 64.0 GiB
    3 |   fc = Linear(1000000)
      |        ^~~~~~~~~~~~~~~
  hint: check the layer sizes (archdsl.elaborate.builder.MAX_PARAM_BYTES is the limit)
"""),
    (["check", "imp.arch"], 1, """\
imp.arch:1:1: error: import '/proc/version' reaches outside the spec's folder and the shipped library
    1 | import "/proc/version"
      | ^~~~~~~~~~~~~~~~~~~~~~
  hint: imports may reach HERE and below; pass -I FOLDER (or set ARCHDSL_IMPORT_PATH) to allow another folder
"""),
    (["check", "split.arch"], 1, """\
split.arch:3:12: error: Split: would make 20,000 pieces, more than the limit of 10,000
    3 |   out x |> split(1, 1) |> first
      |            ^~~~~~~~~~~
  note: the input [N, 20000] comes from here (at split.arch:2:3)
    2 |   in x: [N, 20000]
      |   ^~~~~~~~~~~~~~~~
  hint: cut into fewer, larger pieces
"""),
    (["check", "init.arch"], 1, """\
init.arch:3:23: error: Parameter: bad value for 'init': uniform: a=1 is greater than b=0
    3 |   p = Parameter((3,), "uniform(a=1, b=0)")
      |                       ^~~~~~~~~~~~~~~~~~~
  hint: got a string ('uniform(a=1, b=0)')
"""),
    (["fmt", "clash.arch", "-o", "/dev/full"], 2, """\
error: cannot write /dev/full: No space left on device
  hint: free some space or write elsewhere
"""),
    (["build", "clash.arch", "-o", "OUT", "--seed", "99999999999999999999999"], 2, """\
error: --seed must fit in 64 bits, got a 77-bit number
"""),
    (["build", "small.arch", "-o", "small.arch/OUT"], 2, """\
error: cannot create HERE/small.arch: a file of that name is in the way
  hint: a component of the path is a file, not a folder
"""),
    (["fmt", "small.arch", "-o", "HERE"], 2, """\
error: cannot write HERE: it is a folder
  hint: name a file
"""),
]


@pytest.mark.parametrize("argv, code, expected", GOLDEN, ids=[" ".join(g[0][:2]) for g in GOLDEN])
def test_golden_messages(here: Path, capsys, argv: list[str], code: int, expected: str) -> None:
    for name, text in CASES.items():
        (here / name).write_text(text)
    argv = [a.replace("HERE", str(here)) for a in argv]
    got_code, _, err = cli(capsys, *argv)
    assert (got_code, err.replace(str(here.resolve()), "HERE").replace(str(here), "HERE")) == (code, expected)


def test_golden_force_refusal(here: Path, capsys) -> None:
    assert cli(capsys, "build", "small.arch", "-o", "OUT")[0] == 0
    (here / "OUT" / "notes.md").write_text("mine")
    code, _, err = cli(capsys, "build", "small.arch", "-o", "OUT", "--force")
    assert (code, err.replace(str(here), "HERE")) == (2, """\
error: refusing to replace HERE/OUT: it holds files archdsl did not write (notes.md)
  hint: choose another output folder
""")
