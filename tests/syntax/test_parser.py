"""Golden tests for the .arch parser: the tree each construct produces, and errors with line:col."""

from __future__ import annotations

import pytest

from archdsl.errors import ArchError, LimitError, ParseError
from archdsl.syntax import ast as A
from archdsl.syntax.parser import parse, parse_expression, parse_tensor_type, parse_type_name


def n(name: str) -> A.Name:
    """Shorthand for a Name node."""
    return A.Name(name)


def only(text: str) -> A.Expr:
    """The expression of ``let e = text``."""
    item = parse(f"let e = {text}").items[0]
    assert isinstance(item, A.Assign)
    return item.value


EXPRESSIONS = [
    ("1", A.Num(1)),
    ("2.5", A.Num(2.5)),
    ("1e3", A.Num(1000.0)),
    ('"a\\"b"', A.Str('a"b')),
    ("'x'", A.Str("x")),
    ("true", A.Const(True)),
    ("none", A.Const(None)),
    ("a + b * c", A.BinOp("+", n("a"), A.BinOp("*", n("b"), n("c")))),
    ("a - b - c", A.BinOp("-", A.BinOp("-", n("a"), n("b")), n("c"))),
    ("a ** b ** c", A.BinOp("**", n("a"), A.BinOp("**", n("b"), n("c")))),
    ("-a ** 2", A.UnaryOp("-", A.BinOp("**", n("a"), A.Num(2)))),
    ("a |> f ** 2", A.BinOp("**", A.Pipe(n("a"), n("f")), A.Num(2))),
    ("x |> f |> g(1)", A.Pipe(A.Pipe(n("x"), n("f")), A.Call(n("g"), (A.Num(1),), ()))),
    ("not a and b or c", A.BinOp("or", A.BinOp("and", A.UnaryOp("not", n("a")), n("b")), n("c"))),
    ("a != 1 or b >= 2", A.BinOp("or", A.BinOp("!=", n("a"), A.Num(1)), A.BinOp(">=", n("b"), A.Num(2)))),
    ("a if c", A.IfExpr(n("a"), n("c"), None)),
    ("a if c else b if d", A.IfExpr(n("a"), n("c"), A.IfExpr(n("b"), n("d"), None))),
    ("f(a, k=1)", A.Call(n("f"), (n("a"),), (("k", A.Num(1)),))),
    ("ns.Block(2)", A.Call(A.Attr(n("ns"), "Block"), (A.Num(2),), ())),
    ("x[0][i + 1]", A.Index(A.Index(n("x"), A.Num(0)), A.BinOp("+", n("i"), A.Num(1)))),
    ("()", A.TupleLit(())),
    ("(a,)", A.TupleLit((n("a"),))),
    ("(a)", n("a")),
    ("[a, b,]", A.ListLit((n("a"), n("b")))),
    ("seq[a]", A.ListLit((n("a"),), seq=True)),
    ("[f(i) for i in range(3) if i > 0]",
     A.Comprehension(A.Call(n("f"), (n("i"),), ()), (A.CompFor(("i",), A.Call(n("range"), (A.Num(3),), ())),),
                     cond=A.BinOp(">", n("i"), A.Num(0)))),
    ("seq[b for (t, c) in s]", A.Comprehension(n("b"), (A.CompFor(("t", "c"), n("s")),), seq=True)),
    ('seq{"l{i}": b for i in r}', A.Comprehension(n("b"), (A.CompFor(("i",), n("r")),), key=A.Str("l{i}"), seq=True)),
    ('seq{conv: c, "norm": d}', A.SeqNamed(((n("conv"), n("c")), (A.Str("norm"), n("d"))))),
    ("reparam { a = x; b = y }", A.Reparam((("a", n("x")), ("b", n("y"))))),
]


@pytest.mark.parametrize(("text", "tree"), EXPRESSIONS, ids=[t for t, _ in EXPRESSIONS])
def test_expression_trees(text: str, tree: A.Expr) -> None:
    """Each expression form parses to the expected tree, in a let and on its own."""
    assert only(text) == tree
    assert parse_expression(text) == tree


def test_block_statements() -> None:
    """Params, doc, inputs with dtypes, multi-target assignment, let and both output forms."""
    module = parse('''
        import "std/blocks.arch"
        import "lib.arch" as lib
        let width = 64
        block B(c: int, ks: list[int] = [3], name: str = "b") {
          "Doc."
          in x: int64[N, T]
          a, b = split(x)
          let k = c // 2
          out a
          out y: [N, k] = b
        }
    ''', "f.arch")
    imp, lib, let, block = module.items
    assert (imp, lib) == (A.Import("std/blocks.arch"), A.Import("lib.arch", "lib"))
    assert let == A.Assign(("width",), A.Num(64), let=True)
    assert block.params == (A.ParamDecl("c", A.TypeName("int")),
                            A.ParamDecl("ks", A.TypeName("list", (A.TypeName("int"),)), A.ListLit((A.Num(3),))),
                            A.ParamDecl("name", A.TypeName("str"), A.Str("b")))
    assert block.doc == "Doc."
    assert block.body == (
        A.InputStmt("x", A.TensorTypeExpr((n("N"), n("T")), "int64")),
        A.Assign(("a", "b"), A.Call(n("split"), (n("x"),), ())),
        A.Assign(("k",), A.BinOp("//", n("c"), A.Num(2)), let=True),
        A.OutputStmt(None, None, n("a")),
        A.OutputStmt("y", A.TensorTypeExpr((n("N"), n("k"))), n("b")),
    )
    assert module.file == "f.arch" and block.span.line == 5 and block.body[0].span.line == 7


def test_names_that_start_with_keywords() -> None:
    """``inp``, ``seqs`` and ``outer`` are names, not keywords followed by something."""
    assert only("inp |> seqs |> outer") == A.Pipe(A.Pipe(n("inp"), n("seqs")), n("outer"))


def test_fragments() -> None:
    """Tensor types and parameter types parse on their own, in canonical spelling."""
    assert parse_tensor_type("float16[B, 3]") == A.TensorTypeExpr((n("B"), A.Num(3)), "float16")
    assert parse_tensor_type("[]") == A.TensorTypeExpr(())
    assert str(parse_type_name("dict[str,list[int]]")) == "dict[str, list[int]]"


def test_fragment_positions() -> None:
    """A fragment placed at line:col reports spans (and errors) there."""
    e = parse_expression("a +\n b", "s.yaml", line=4, column=10)
    assert (e.span.line, e.span.column) == (4, 10)
    assert (e.right.span.line, e.right.span.column) == (5, 2)
    with pytest.raises(ParseError) as info:
        parse_expression("a + )", "s.yaml", line=3, column=7)
    span = info.value.diagnostics[0].span
    assert (span.file, span.line, span.column) == ("s.yaml", 3, 11)


def test_expression_rejects_trailing_items() -> None:
    """An expression string cannot smuggle in more statements."""
    with pytest.raises(ParseError, match="unexpected 'let'"):
        parse_expression("1 let x = 2")


ERRORS = [
    ("block A( {}", "1:10", "unexpected '{'"),
    ("block A() {\n  x = \n}", "3:1", "unexpected '}'"),
    ("block A() {\n  in x [N]\n}", "2:8", "unexpected '['"),
    ("let x = a < b < c", "1:15", "unexpected '<'"),
    ("let x = 1 $ 2", "1:11", "unexpected character '$'"),
    ("block A() {\n  out x\n", "1:11", "this '{' is never closed"),
]


@pytest.mark.parametrize(("text", "where", "message"), ERRORS, ids=[e[2] for e in ERRORS])
def test_error_positions(text: str, where: str, message: str) -> None:
    """Syntax errors are ParseErrors that name the line and column."""
    with pytest.raises(ParseError) as info:
        parse(text, "bad.arch")
    rendered = info.value.render()
    assert rendered.startswith(f"bad.arch:{where}: error: {message}"), rendered


@pytest.mark.parametrize("text", ["let x = " + "a + " * 2000 + "a", "let x = " + "-" * 2000 + "a",
                                  "let x = " + "f(" * 190 + ")" * 190, "let x = " + "[" * 300 + "]" * 300])
def test_deep_nesting_is_a_limit_error(text: str) -> None:
    """Absurd nesting is refused with an ArchError, never a RecursionError."""
    with pytest.raises(LimitError):
        parse(text)


def test_oversized_source() -> None:
    """Files over the size limit are refused before parsing."""
    with pytest.raises(ArchError, match="larger than"):
        parse("#" * (5 * 1024 * 1024))
