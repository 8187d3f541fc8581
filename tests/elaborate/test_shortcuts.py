"""The elaborator's shortcuts on its commonest statements (``x |> fc``, ``fc = Linear(64)``, ``relu(x)``,
``in x: [N, c]``, int arithmetic, known ops and producers) give exactly what the general path gives: the same
graph (nodes, names, params, spans, scopes, docs), the same warnings and the same errors, on random specs and on
the shipped ones. ``session.SHORTCUTS = False`` turns every shortcut off."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

import archdsl.elaborate.session as session_module
from archdsl import zoo
from archdsl.elaborate import elaborate_model, load, model_names
from archdsl.errors import ArchError, collect_warnings

SPECS = ["resnet.arch", "vit.arch", "mobilenet.arch", "repvgg.arch", "densenet.arch", "mobileone.arch",
         "linear_attention_lm.arch", "efficientnet.arch"]


def _outcome(text: str, model: str | None = None, file: str | None = None) -> tuple:
    """Everything an elaboration yields that users see: the graph (with spans, scopes and docs) or the error, and
    the warnings."""
    with collect_warnings() as warned:
        try:
            ns, loader = load(file) if file else load(text)
            g = elaborate_model(ns, loader, model)
            result: tuple = (g.to_json(), [(n.name, n.span, n.scope, n.module, n.tags) for n in g.nodes],
                             list(g.params.items()), dict(g.module_docs), dict(g.input_spans))
        except ArchError as exc:
            result = ("error", type(exc).__name__, str(exc))
    return result, [str(w) for w in warned]


def _both_ways(monkeypatch, text: str, model: str | None = None, file: str | None = None) -> tuple:
    fast = _outcome(text, model, file)
    monkeypatch.setattr(session_module, "SHORTCUTS", False)
    general = _outcome(text, model, file)
    monkeypatch.setattr(session_module, "SHORTCUTS", True)
    return fast, general


# -- random specs -----------------------------------------------------------------------------------------------
# Each layer: (text, width after it: "c" the block's input width, "w" its second parameter, "=" unchanged).
LAYERS = [("Linear(w)", "w"), ("Linear(c)", "c"), ("Linear(w, bias=false)", "w"), ("Linear(out_features=c)", "c"),
          ("Linear(w * 2 // 2)", "w"), ("Linear(c + 0)", "c"), ("Linear(w % 5 + w - w % 5)", "w"),
          ("LayerNorm()", "="), ("BatchNorm1d()", "="), ("Dropout(0.25)", "=")]
ACTS = ["relu", "gelu", "sigmoid", "tanh"]
INPUTS = ["in x: [N, c]", "in x: [B, c]", "in x: [N, c * 1]", "in x: [N, c + 0]", "in x: [N, ...]", "in x: [N, C]",
          "in x: [N, w]", "in x: [c, N]"]      # (the last two: an input that may not fit, an error both ways)
MISTAKES = ["Linear(-1)", "Linear(w, nonsense=1)", "Linear(99999999999999999999999)", "Linear(w, w)", "Linear()",
            "relu(zz)", "LayerNorm(bogus=true)"]


def _block(r: random.Random, k: int) -> str:
    lines = [f"block B{k}(c: int, w: int = {r.choice([4, 6, 8])}) {{"]
    if r.random() < 0.5:
        lines.append(f'  "Block {k}, drawn at random."')
    lines.append("  " + r.choice(INPUTS))
    layers = []
    for i in range(r.randint(1, 4)):
        text, width = r.choice(LAYERS)
        if r.random() < 0.08:
            text, width = r.choice(MISTAKES), "="
        layers.append((f"l{i}", width))
        lines.append(f"  l{i} = {text}")
    if r.random() < 0.2:
        lines.append(f"  {r.choice(['extra', '_kept'])} = Linear(w)")      # unused: a warning, or kept by its '_'
    if r.random() < 0.05:
        lines.append("  l0 = Linear(w)")                                     # defined twice: an error
    expr, width = "x", "c"
    for _ in range(r.randint(1, 5)):
        name, out = r.choice(layers)
        form = r.randrange(4)
        if form == 0:
            expr = f"{expr} |> {name}"
        elif form == 1:
            expr = f"{name}({expr})"
        elif form == 2:
            expr = f"{r.choice(ACTS)}({expr})"
            out = "="
        else:
            expr = f"{expr} |> {r.choice(ACTS)}"
            out = "="
        width = width if out == "=" else out
    if width != "c":
        lines.append("  proj = Linear(c)")
        expr = f"{expr} |> proj"
    shape = r.randrange(5)
    if shape == 0:
        expr = f"x + ({expr})"
    elif shape == 1:
        expr = f"({expr}) * {r.choice(['2', '0.5', '-1'])}"
    elif shape == 2:
        expr = f"{r.choice(['2', '1.5'])} - ({expr})"
    elif shape == 3 and r.random() < 0.3:
        expr = f"({expr}) + (x |> l0)"          # widths may not match: a shape error, the same both ways
    lines.append(f"  out {expr}")
    lines.append("}")
    return "\n".join(lines)


def _spec(r: random.Random) -> str:
    count = r.randint(1, 3)
    blocks = [_block(r, k) for k in range(count)]
    width = r.choice([4, 8, 12])
    body = [f"model M(W: int = {width}) {{", "  in x: [N, W]"]
    value = "x"
    for i in range(r.randint(1, 4)):
        k = r.randrange(count)
        w = r.choice(["4", "8", "W", "W // 2 + 2", "2 * 3", "W % 3 + 4"])
        form = r.randrange(4)
        if form == 0:                      # a named block, applied once or twice (shared weights)
            body.append(f"  b{i} = B{k}(W, {w})")
            body.append(f"  v{i} = {value} |> b{i}" + (f" |> b{i}" if r.random() < 0.4 else ""))
        elif form == 1:                    # repeated identical applications (replayed)
            body.append(f"  b{i} = seq[B{k}(W, {w}) for j in range({r.randint(1, 4)})]")
            body.append(f"  v{i} = {value} |> b{i}")
        elif form == 2:                    # applications whose arguments differ
            body.append(f"  b{i} = seq[B{k}(W, 4 + j % 3) for j in range({r.randint(1, 4)})]")
            body.append(f"  v{i} = b{i}({value})")
        else:                              # an anonymous application
            body.append(f"  v{i} = {value} |> B{k}(W)")
        value = f"v{i}"
    body.append(f"  out {value}")
    body.append("}")
    return "\n\n".join(blocks) + "\n\n" + "\n".join(body) + "\n"


@given(st.randoms(use_true_random=False))
def test_random_specs_elaborate_the_same_both_ways(r: random.Random) -> None:
    text = _spec(r)
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast, general = _both_ways(monkeypatch, text)
    assert fast == general, text


# -- the shipped specs and the benchmark's shapes ------------------------------------------------------------
@pytest.mark.parametrize("file", SPECS)
def test_shipped_specs_elaborate_the_same_both_ways(file: str, monkeypatch) -> None:
    path = str(next(p for p in zoo.spec_files() if p.name == file))
    ns, _ = load(path)
    for model in model_names(ns):
        fast, general = _both_ways(monkeypatch, "", model, path)
        assert fast == general, model
        assert fast[0][0] != "error"


def _large(units: int, distinct: bool) -> str:
    """A documented residual unit applied ``units`` times with widths that vary (``distinct``: one block definition
    per unit, the file then over 256 KiB for 2000 units, so that block bodies are let go once applied)."""
    unit = ('block U{k}(c: int, h: int) {{\n  "Unit {k}: widen, normalise, act, back, add."\n  in x: [N, c]\n'
            '  up = Linear(h)\n  norm = LayerNorm()\n  down = Linear(c)\n  out x + (gelu(x |> up |> norm) |> down)\n}}\n')
    if distinct:
        blocks = "".join(unit.format(k=k) for k in range(units))
        calls = ", ".join(f"U{k}(16, {8 + k % 7})" for k in range(units))
    else:
        blocks = unit.format(k=0)
        calls = f"U0(16, 8 + j % 5) for j in range({units})"
    return f"{blocks}\nmodel L() {{\n  in x: [N, 16]\n  body = seq[{calls}]\n  out x |> body\n}}\n"


@pytest.mark.parametrize(("units", "distinct"), [(200, False), (100, True), (2000, True)])
def test_large_specs_elaborate_the_same_both_ways(units: int, distinct: bool, monkeypatch) -> None:
    text = _large(units, distinct)
    assert (len(text) > 256 * 1024) == (units == 2000)
    fast, general = _both_ways(monkeypatch, text)
    assert fast == general
    assert fast[0][0] != "error"


def test_the_switch_reaches_every_part(monkeypatch) -> None:
    monkeypatch.setattr(session_module, "SHORTCUTS", False)
    from archdsl.elaborate import Elaborator
    from archdsl.elaborate.loader import Loader

    e = Elaborator(Loader(), "M")
    parts = (e.session, e.session.builder, e.evaluator, e.shapes, e.applier, e.blocks)
    assert [p.shortcuts for p in parts] == [False] * len(parts)
