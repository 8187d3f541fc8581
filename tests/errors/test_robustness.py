"""Never a traceback: mutated specs and odd values fail with an ArchError (or compile), quickly."""

from __future__ import annotations

import random
import re

import pytest

import archdsl
from archdsl.errors import ArchError

SPEC = """\
let widths = [8, 16]
let depth = 2
block Unit(c: int, stride: int = 1, k: int = 3) {
  "A unit with a shortcut and a re-parameterisable branch."
  in x: [N, C, H, W]
  conv = Conv2d(c, k, stride=stride, padding=k // 2, bias=false)
  bn = BatchNorm2d()
  short = seq[Conv2d(c, 1, stride=stride), BatchNorm2d()] if stride != 1 or C != c
  rep = reparam {
    a = seq[Conv2d(c, 3, padding=1), BatchNorm2d()]
    b = Conv2d(c, 1)
  }
  y = x |> conv |> bn |> relu
  out relu(y + x |> short) * 2 + y |> rep
}
model Net(classes: int = 10, scale: float = 1.0) {
  in image: [N, 3, H, W]
  stem = seq{conv0: Conv2d(widths[0], 3, padding=1), "norm{0}": BatchNorm2d()}
  stages = [Unit(make_divisible(w * scale, 4), stride=2 if i == 0 else 1) for w in widths for i in range(depth)]
  head = seq[AdaptiveAvgPool2d(1), flatten, Linear(classes)]
  out logits = image |> stem |> relu |> MaxPool2d(3, stride=2, padding=1) |> stages |> head
}
"""

TOKENS = re.compile(r'\s+|[A-Za-z_]\w*|\d+|\|>|\*\*|//|[=!<>]=|"[^"\n]*"|.', re.S)
VOCABULARY = ["0", "-1", "1.5", "10**6", "2**64", '"s"', "none", "true", "[]", "()", "x", "N", "C", "range",
              "seq", "reparam", "{", "}", "(", ")", "[", "]", ",", "|>", "+", "*", "//", "%", "@", "**", "if",
              "else", "for", "in", "out", "let", "block", "model", "Unit", "relu", "1e308", "9" * 30, "min", "len",
              "make_divisible", "int", "stride", "groups", ".", ":", "int64", "not", "==", "-", '"{i}"', '"{1/0}"']
NUMBERS = ["0", "1", "2", "3", "7", "64", "-1", "1.5", "10**6", "2**40"]
NAMES = sorted(set(re.findall(r"[A-Za-z_]\w*", SPEC)) | {"tanh", "Linear", "BatchNorm1d", "AvgPool2d", "W"})
MUTATIONS = 200
CHUNKS = 4


def mutate(text: str, rng: random.Random) -> str:
    """Delete, duplicate, swap or replace a random token, or delete, duplicate or swap a random character."""
    toks = TOKENS.findall(text)
    kind = rng.randrange(12)
    i, j = rng.randrange(len(toks)), rng.randrange(len(toks))
    if kind >= 8:   # same-kind replacements keep the spec parseable, so they reach the elaborator
        pool = NUMBERS if kind < 10 else NAMES
        spots = [k for k, t in enumerate(toks) if (t[0].isdigit() if kind < 10 else t[0].isalpha())]
        toks[rng.choice(spots)] = rng.choice(pool)
    elif kind == 0:
        del toks[i]
    elif kind == 1:
        toks.insert(i, toks[j])
    elif kind == 2:
        toks[i], toks[j] = toks[j], toks[i]
    elif kind == 3:
        toks[i] = rng.choice(VOCABULARY)
    elif kind == 4:
        toks.insert(i, f" {rng.choice(VOCABULARY)} ")
    else:
        chars = list(text)
        i, j = rng.randrange(len(chars)), rng.randrange(len(chars))
        if kind == 5:
            del chars[i]
        elif kind == 6:
            chars.insert(i, chars[j])
        else:
            chars[i], chars[j] = chars[j], chars[i]
        return "".join(chars)
    return "".join(toks)


def mutant(seed: int) -> str:
    """The spec after one to four mutations drawn from ``seed``."""
    rng = random.Random(seed)
    text = SPEC
    for _ in range(rng.randint(1, 4)):
        text = mutate(text, rng)
    return text


def test_base_spec_compiles() -> None:
    """The spec being mutated is itself valid."""
    assert len(archdsl.compile(SPEC).nodes) > 30


@pytest.mark.usefixtures("hang_guard")
@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_mutated_specs_raise_only_arch_errors(chunk: int) -> None:
    """200 deterministic mutants in all: each compiles or raises an ArchError with a location (never hangs)."""
    for seed in range(chunk, MUTATIONS, CHUNKS):
        source = mutant(seed)
        try:
            archdsl.compile(source)
        except ArchError as exc:
            assert exc.diagnostics and exc.render(), f"seed {seed}"


def model(body: str, before: str = "") -> str:
    """A model with one input ``x: [N, 3, H, W]`` and ``body`` as its statements."""
    return before + "model M() {\n  in x: [N, 3, H, W]\n" + body + "\n}\n"


ODD = [
    "  c = Conv2d(8, 3, stride=0)\n  out x |> c",
    "  c = Conv2d(8, 3, dilation=0)\n  out x |> c",
    "  out x |> MaxPool2d(3, stride=0)",
    "  out x |> MaxPool2d(0)",
    "  out x |> AvgPool2d(-2)",
    "  c = Linear(-1)\n  out x |> c",
    "  out x |> flatten(5)",
    '  out x |> flatten("a")',
    "  out x[0]",
    "  out x * int(1e308)",
    '  out x * int("abc")',
    "  out x * sqrt(-1)",
    "  out x * (-8) ** 0.5",
    "  out x * 0 ** -1",
    "  out x * 1.0 // 0.0",
    "  out x * (1 % 0)",
    "  out x * max()",
    "  out x * min([])",
    '  out x * total([1, "a"])',
    "  out x * make_divisible(10, 0)",
    "  out x * round(1.5, 2**70)",
    "  out x * ceil(1e400)",
    "  out x * zip(1, 2)",
    "  out x * range(0, 10, 0)[0]",
    "  out x * (N // 0)",
    "  out x * (3 // N)",
    "  out x * (N ** 2)",
    "  out x if N < 3 else x",
    "  out x |> seq{\"{1/0}\": relu}",
    "  out x |> seq{\"{\": relu}",
    "  out x |> seq{\"{y}\": relu}",
    "  out x |> seq{\"{x}\": relu}",
    "  out x |> reparam { a = relu if false }",
    "  out (x, x) |> relu",
    "  out relu(x)(x)",
    "  a, b = (x, x, x)\n  out a",
    "  out x |> std.foo",
    "  out x |> 3.foo",
    "  out x @ x",
]


@pytest.mark.parametrize("body", ODD)
def test_odd_values_raise_arch_errors(body: str) -> None:
    """Values that used to reach Python's arithmetic or pydantic unguarded now give spec errors."""
    with pytest.raises(ArchError) as info:
        archdsl.compile(model(body))
    assert info.value.diagnostics[0].span is not None
