"""Whatever `check` accepts, `build` builds: grammar-aware random specs (with hostile names and values) that
compile also build, their generated source compiles and a forward pass runs at the declared sizes."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import archdsl
from archdsl.backends.torch.codegen import generate_source
from archdsl.errors import ArchError
from archdsl.saving import load_built, save_built

NAMES = ["conv", "body", "head", "training", "forward", "cuda", "_modules", "eval", "type", "layer1", "x1",
         "class_", "weight", "bias", "half", "to", "stem", "_private", "T", "in_", "block", "model"]
INITS = ["zeros", "ones", "normal(std=0.02)", "normal(std=-1)", "uniform(a=1, b=0)", "trunc_normal(std=0)",
         "constant(value=1e999)", "constant(value=0.5)", "uniform(a=-1, b=1)", "trunc_normal(std=0.02, a=-0.04, b=0.04)"]
SMALL = st.sampled_from([1, 2, 3, 4, 8, 0, -1])


@st.composite
def conv_layer(draw) -> str:
    """A 4-D layer expression; values are mostly sensible, sometimes hostile."""
    kind = draw(st.sampled_from(["conv", "bn", "act", "pool", "drop", "seq", "named_seq", "avg"]))
    if kind == "conv":
        out, k = draw(SMALL), draw(st.sampled_from([1, 3, 5, 0, 9]))
        stride, groups = draw(st.sampled_from([1, 2, 0])), draw(st.sampled_from([1, 2, 3]))
        padding = draw(st.sampled_from(["0", "1", '"same"', "-1", "2"]))
        bias = draw(st.sampled_from(["true", "false"]))
        return f"Conv2d({out}, {k}, stride={stride}, padding={padding}, groups={groups}, bias={bias})"
    if kind == "bn":
        eps = draw(st.sampled_from(["1e-5", "0.0", "-1.0", "1e999"]))
        return f"BatchNorm2d(eps={eps})"
    if kind == "act":
        return draw(st.sampled_from(["relu", "gelu", "sigmoid", "tanh", "ReLU()", "GELU()"]))
    if kind == "pool":
        k, s = draw(st.sampled_from([1, 2, 3, 0])), draw(st.sampled_from([1, 2, 0]))
        return f"MaxPool2d({k}, stride={s})"
    if kind == "avg":
        return f"AdaptiveAvgPool2d({draw(st.sampled_from([1, 2, 0]))})"
    if kind == "drop":
        return f"Dropout({draw(st.sampled_from(['0.0', '0.5', '1.0', '1.5', '-0.1']))})"
    inner = draw(st.lists(st.sampled_from(["relu", "BatchNorm2d()", "Conv2d(4, 3, padding=1)", "Conv2d(4, 1)"]),
                          min_size=1, max_size=3))
    if kind == "seq":
        return "seq[" + ", ".join(inner) + "]"
    keys = draw(st.lists(st.sampled_from(NAMES + ["0", "1"]), min_size=len(inner), max_size=len(inner)))
    return "seq{" + ", ".join(f"{k}: {v}" for k, v in zip(keys, inner, strict=True)) + "}"


@st.composite
def specs(draw) -> tuple[str, tuple[int, ...]]:
    """A model over a concrete input [2, C, H, W] (so check knows every size) and the input shape."""
    c, h, w = draw(st.sampled_from([1, 3, 4])), draw(st.sampled_from([1, 5, 8])), draw(st.sampled_from([1, 6, 8]))
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    lines = [f"  {n} = {draw(conv_layer())}" for n in names]
    chain = " |> ".join(["x", *names])
    tail = draw(st.sampled_from(["", "flat", "param", "residual", "anon"]))
    if tail == "flat":
        lines.append(f"  fc = Linear({draw(SMALL)})")
        chain = f"{chain} |> flatten |> fc"
    elif tail == "param":
        lines.append(f'  p = Parameter((1,), "{draw(st.sampled_from(INITS))}")')
        chain = f"({chain}) * p"
    elif tail == "residual":
        chain = f"relu({chain} + x)"
    elif tail == "anon":
        chain = f"{chain} |> seq[{draw(conv_layer())}, relu]"
    text = "model M() {\n" + f"  in x: [2, {c}, {h}, {w}]\n" + "\n".join(lines) + f"\n  out {chain}\n}}\n"
    return text, (2, c, h, w)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(specs())
def test_check_accepted_specs_build_and_run(case: tuple[str, tuple[int, ...]]) -> None:
    text, shape = case
    try:
        graph = archdsl.compile(text)
    except ArchError as exc:
        assert exc.diagnostics and exc.diagnostics[0].span is not None, exc.render()
        return
    compile(generate_source(graph), "<generated>", "exec")        # the generated source is valid Python
    module = archdsl.build(graph, seed=0, check_inputs=True).eval()
    x = torch.randn(shape)
    with torch.no_grad():
        out = module(x)
    assert isinstance(out, torch.Tensor) and out.shape[0] == 2
    with tempfile.TemporaryDirectory() as tmp:          # and what build wrote, load_built reads back
        save_built(graph, module, Path(tmp) / "out")
        with torch.no_grad():
            again = load_built(Path(tmp) / "out").eval()(x)
    torch.testing.assert_close(again, out, equal_nan=True)
