"""Elaboration behaviour: names, containers, templates, constants, parameters, built-ins and their errors."""

from __future__ import annotations

import gc

import pytest

import archdsl
from archdsl.elaborate import elaborate_model, load
from archdsl.elaborate.builder import GraphBuilder
from archdsl.elaborate.values import Absent, Tensor, describe
from archdsl.errors import ArchError, ElaborationError, ShapeError, UsageError
from archdsl.ir.dims import SymDim
from archdsl.ir.types import TensorType


def model(body: str, before: str = "", params: str = "") -> str:
    """A model with one input ``x: [N, 3, H, W]`` and ``body`` as its statements."""
    return before + f"model M({params}) {{\n  in x: [N, 3, H, W]\n" + body + "\n}\n"


def error_of(source: str, **params) -> ArchError:
    """The ArchError compiling ``source`` raises."""
    with pytest.raises(ArchError) as info:
        archdsl.compile(source, **params)
    return info.value


def test_underscore_names_may_stay_unused() -> None:
    """A name starting with '_' is exempt from the unused check (the verifier warns about the dead node)."""
    graph = archdsl.compile(model("  _probe = relu(x)\n  out x |> tanh"))
    assert [n.op.name for n in graph.nodes] == ["relu", "tanh"]


def test_unused_input_of_a_block_is_named_as_an_input() -> None:
    """The unused-name error says what kind of name it is."""
    block = "block B() {\n  in a: [N, 3, H, W]\n  in b: [N, 3, H, W]\n  out relu(a)\n}\n"
    exc = error_of(model("  blk = B()\n  out blk(x, x)", block))
    assert exc.diagnostics[0].message == "input 'b' is defined but never used"


def test_lists_of_op_names_are_containers() -> None:
    """``[BatchNorm2d for ...]`` and ``[relu, tanh]`` act as sequential containers, named by index."""
    graph = archdsl.compile(model("  norms = [BatchNorm2d for i in range(2)]\n  acts = [relu, tanh]\n"
                                  "  out x |> norms |> acts"))
    assert [n.module for n in graph.nodes] == ["norms.0", "norms.1", "acts.0", "acts.1"]
    assert "norms.1.running_var" in graph.params


def test_template_errors_point_inside_the_string() -> None:
    """An error in ``{...}`` of a name template points at the expression, not at line 1."""
    exc = error_of(model('  body = seq{"layer{i + q}": relu for i in range(2)}\n  out x |> body'))
    assert exc.diagnostics[0].message == "unknown name 'q'"
    assert str(exc.diagnostics[0].span) == "<string>:3:25"


def test_template_values_must_be_names() -> None:
    """A template part that is a tensor is refused; unbalanced braces too."""
    assert "must be an int, a float or a string" in error_of(model('  s = seq{"a{x}": relu}\n  out x |> s')).render()
    assert "unbalanced braces" in error_of(model('  s = seq{"a{": relu}\n  out x |> s')).render()


def test_constants_are_lazy_and_cycles_name_the_chain() -> None:
    """Definition order does not matter; a cycle through three constants lists all three."""
    assert archdsl.compile(model("  out x * a", "let a = b + 1\nlet b = 2\n")).nodes[0].op.value == 3.0
    exc = error_of(model("  out x * a", "let a = b\nlet b = c\nlet c = a\n"))
    assert exc.diagnostics[0].message == "constants are defined in terms of each other: 'a' -> 'b' -> 'c' -> 'a'"
    assert [str(s) for _, s in exc.diagnostics[0].notes] == ["<string>:2:1", "<string>:3:1"]


def test_a_constant_defined_by_itself() -> None:
    """The one-name cycle keeps its short message."""
    exc = error_of(model("  out x * a", "let a = a + 1\n"))
    assert exc.diagnostics[0].message == "constant 'a' is defined in terms of itself"


def test_errors_point_at_the_offending_argument() -> None:
    """Type errors in block and op arguments point at the argument, not the whole call."""
    block = "block B(c: int, k: int = 3) {\n  in x: [N, C, H, W]\n  out relu(x)\n}\n"
    exc = error_of(model("  b = B(4, k=1.5)\n  out x |> b", block))
    assert str(exc.diagnostics[0].span) == "<string>:7:14"
    exc = error_of(model('  c = Conv2d(8, 3, stride="two")\n  out x |> c'))
    assert str(exc.diagnostics[0].span) == "<string>:3:27"


def test_a_parameter_declared_twice() -> None:
    """Two parameters of one block with the same name."""
    block = "block B(c: int, c: int) {\n  in x: [N, C, H, W]\n  out relu(x)\n}\n"
    exc = error_of(model("  b = B(1, 2)\n  out x |> b", block))
    assert exc.diagnostics[0].message == "parameter 'c' is declared twice in block B"


def test_shape_errors_name_the_op_once() -> None:
    """The op's own prefix is not repeated, and each input's origin is a note."""
    exc = error_of("model M() {\n  in x: [N, 4, 8]\n  in y: [N, 4, 8]\n  out x @ y\n}\n")
    assert isinstance(exc, ShapeError)
    assert exc.diagnostics[0].message.startswith("MatMul: ")
    assert len(exc.diagnostics[0].notes) == 2


def test_int_and_float_built_ins() -> None:
    """``int`` and ``float`` are callable built-ins (they were refused as types before)."""
    graph = archdsl.compile(model("  c = Conv2d(int(7.9), 1)\n  out x |> c * float(2)"))
    assert graph.nodes[0].op.out_channels == 7


def test_float_overflow_is_an_error() -> None:
    """Arithmetic that leaves the finite floats is refused."""
    assert "not a finite number" in error_of(model("  out x * (1e200 * 1e200)")).render()


def test_model_parameter_overrides_are_usage_errors() -> None:
    """Unknown, mistyped or missing model parameters are the caller's mistake (exit status 2)."""
    source = "model M(n: int, scale: float = 1.0) {\n  in x: [N, 3]\n  fc = Linear(n)\n  out x |> fc\n}\n"
    assert isinstance(error_of(source), UsageError)
    exc = error_of(source, n=4, sclae=2.0)
    assert isinstance(exc, UsageError) and exc.diagnostics[0].hint == "did you mean 'scale'?"
    exc = error_of(source, n="four")
    assert isinstance(exc, UsageError)
    assert exc.diagnostics[0].message == ("parameter 'n' of model M is declared int, but the value given is "
                                          "a string ('four')")
    assert archdsl.compile(source, n=4).nodes[-1].types[0].shape[-1] == 4


def test_garbage_collection_is_restored() -> None:
    """The collector is paused while elaborating and restored afterwards, also after an error."""
    assert gc.isenabled()
    archdsl.compile(model("  out relu(x)"))
    assert gc.isenabled()
    with pytest.raises(ElaborationError):
        archdsl.compile(model("  out relu(y)"))
    assert gc.isenabled()


def test_elaborating_twice_from_one_load() -> None:
    """A namespace can be elaborated again (constants are cached, not re-evaluated into errors)."""
    ns, loader = load(model("  out x * k", "let k = 2\n"))
    first, second = elaborate_model(ns, loader), elaborate_model(ns, loader)
    assert first == second


def test_fresh_value_names() -> None:
    """Value names: the hint, then _2, _3 ...; a hint that looks like a suffixed name stays unique."""
    b = GraphBuilder("g", {})
    names = [b.fresh_value(h) for h in ("relu", "relu", "relu_2", "relu", "layer1.0.conv", "")]
    assert names == ["relu", "relu_2", "relu_2_2", "relu_3", "layer1_0_conv", "v"]


@pytest.mark.parametrize(("value", "text"), [
    (3, "an int"), (2.5, "a float"), (True, "a bool"), ("s", "a string"), ([1], "a list"), ((1,), "a tuple"),
    (None, "none"), (SymDim.symbol("H"), "the symbolic size H"), (Absent(), "an absent layer"),
    (Tensor("v", TensorType(shape=(2, 3))), "a tensor [2, 3]"), (max, "a built-in function"),
])
def test_describe(value: object, text: str) -> None:
    """Values are described in plain words in messages."""
    assert describe(value) == text


def test_variadic_ops_take_their_tensors_directly() -> None:
    """gla(q, k, v, g) and add_n(a, b, c) apply at once, like relu(x); concat([a, b]) still takes a list."""
    import archdsl

    graph = archdsl.compile("""
model V() {
  in q: [B, T, 2, 8]
  in k: [B, T, 2, 8]
  out gla(q, k, q, k) + add_n(q, k, q) + concat([q, k], dim=3) |> slice(3, 0, 8)
}
""")
    assert [n.op.name for n in graph.nodes][:2] == ["gla", "add_n"]
