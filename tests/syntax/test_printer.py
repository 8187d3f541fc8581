"""The canonical printer: parse(format(m)) == m, formatting is idempotent, and YAML round-trips too.

Comments (own-line and trailing) and blank-line groups survive .arch formatting and both YAML conversions,
in order, idempotently."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archdsl.errors import ArchError
from archdsl.syntax import ast as A
from archdsl.syntax.parser import _parser, parse, parse_expression
from archdsl.syntax.printer import KEYWORDS, LINE_WIDTH, format_expr, format_module
from archdsl.syntax.trivia import yaml_comments
from archdsl.syntax.yaml_frontend import EXPRESSION_WORDS, STATEMENT_WORDS, parse_yaml
from archdsl.syntax.yaml_printer import format_yaml

ROOT = Path(__file__).resolve().parents[2]
SPEC_FILES = sorted(p for d in ("specs", "examples") for ext in ("arch", "yaml", "yml")
                    for p in (ROOT / d).rglob(f"*.{ext}"))

EVERY_CONSTRUCT = r'''
import "std/blocks.arch"
import "lib.arch" as lib
let settings = [(1, 16, 1, 1), (6, 24, 2, 2)]
let eps = 1e-5
block Basic(planes: int, stride: int = 1, ks: list[int] = [3, 3], name: str = "b\"\\") {
  "A doc string with \"quotes\"."
  in x: [N, C, H, W]
  in ids: int64[N, T,]
  conv1 = Conv2d(planes, 3, stride=stride, padding=1, bias=false)
  down = seq[Conv2d(planes, 1, stride=stride), BatchNorm2d()] if stride != 1 or C != planes
  act = relu if stride == 1 else none
  a, b = split(x, 2); let k = -(planes + 1) // 2 * 3 ** -2 % 5 @ w
  flag = not (a > b) and true or C <= 3
  out relu(x |> conv1 |> lib.Norm(eps=eps) + x |> down)
  out y: [N, k] = x[0].shape[(1, 2)] - (a - b) - (1).real
}
model Net(num_classes: int = 1000) {
  in image: [N, 3, H, W]
  layers = [Basic(c, stride=2 if i == 0 else 1) for i, c in enumerate(widths) if c > 1]
  stages = [Basic(c) for (t, c, n, s) in settings for j in range(n)]
  blocks = seq[Basic(64) for i in range(2)]
  dense = seq{"denselayer{i + 1}": Basic(32) for i in range(3)}
  named = seq{conv0: Conv2d(3, 3), "norm0": BatchNorm2d()}
  rep = reparam {
    dense = seq[Conv2d(64, 3, padding=1), BatchNorm2d()]; one = Conv2d(64, 1)
    identity = BatchNorm2d() if C == 64
  }
  empty = (seq[], seq{}, reparam {}, (), [], (image,))
  out image |> layers |> blocks |> dense |> rep |> AdaptiveAvgPool2d(1) |> flatten |> Linear(num_classes) |> relu |> dropout
}
'''

SMALL_SPECS = {
    "empty": "",
    "only-imports": 'import "a.arch"\nimport "b.arch" as b\n',
    "interleaved": "block A() {\n}\nmodel M() { in x: [N]\n out x |> A() }\nlet z = 1\nblock B() { out 1 }\n",
}


def roundtrip(module: A.Module) -> str:
    """Format, reparse and reformat; returns the canonical text after checking both properties."""
    text = format_module(module)
    again = parse(text, module.file)
    assert again == module, text
    assert format_module(again) == text
    return text


@pytest.mark.parametrize("text", [EVERY_CONSTRUCT, *SMALL_SPECS.values()], ids=["every", *SMALL_SPECS])
def test_inline_specs_roundtrip(text: str) -> None:
    """Every construct survives format -> parse, .arch -> YAML -> .arch, and formatting is idempotent."""
    module = parse(text, "inline.arch")
    roundtrip(module)
    assert parse_yaml(format_yaml(module), "inline.arch") == module


@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.name for p in SPEC_FILES])
def test_spec_files_roundtrip(path: Path) -> None:
    """Shipped specs and examples format idempotently and convert to the other syntax losslessly."""
    text = path.read_text(encoding="utf-8")
    module = parse_yaml(text, str(path)) if path.suffix in (".yaml", ".yml") else parse(text, str(path))
    roundtrip(module)
    assert parse_yaml(format_yaml(module), str(path)) == module


def test_golden_format() -> None:
    """Messy input comes out in the canonical layout, with its comments and the author's parentheses."""
    messy = ('import "x.arch" as x  # a comment\nlet  a=(1+2)*3\nblock  B( c:int,d : list[ int ]=[1,2] ){'
             "'doc'\n in x:[N,c] ; y = ((x))|>f ; out y if (c>1) else (x)}")
    assert format_module(parse(messy)) == (
        'import "x.arch" as x  # a comment\n'
        "\n"
        "let a = (1 + 2) * 3\n"
        "\n"
        "block B(c: int, d: list[int] = [1, 2]) {\n"
        '  "doc"\n'
        "  in x: [N, c]\n"
        "  y = (x) |> f\n"
        "  out y if (c > 1) else (x)\n"
        "}\n")


def test_long_pipelines_break_before_pipes() -> None:
    """A pipeline over the line width continues on lines that start with ``|>``."""
    text = roundtrip(parse(EVERY_CONSTRUCT))
    lines = text.splitlines()
    continued = [line for line in lines if line.lstrip().startswith("|>")]
    assert continued and all(line.startswith("      |> ") for line in continued)
    assert all(len(line) <= LINE_WIDTH for line in lines if "|>" in line)


def test_reparam_prints_one_branch_per_line() -> None:
    """Re-param branches sit on their own lines, indented one step past the statement."""
    text = format_module(parse(EVERY_CONSTRUCT))
    assert "  rep = reparam {\n    dense = seq[" in text and "\n    one = Conv2d(64, 1)\n    identity = BatchNorm2d() if C == 64\n  }\n" in text


@pytest.mark.parametrize(("text", "canonical"), [
    ("(a + b) * c", "(a + b) * c"), ("a + (b * c)", "a + b * c"), ("a - (b - c)", "a - (b - c)"),
    ("(a ** b) ** c", "(a ** b) ** c"), ("a ** (b ** c)", "a ** b ** c"), ("(-a) ** b", "(-a) ** b"),
    ("(a |> f) ** 2", "a |> f ** 2"), ("x |> (f |> g)", "x |> (f |> g)"), ("(a if b) if c", "(a if b) if c"),
    ("a if b else (c if d)", "a if b else c if d"), ("not (not a)", "not not a"), ("-(-a)", "--a"),
    ("(a < b) < c", "(a < b) < c"), ("[x for i in (a if b else c)]", "[x for i in (a if b else c)]"),
    ("(1).x", "(1).x"), ("1e999", "1e999"), ("f(a)(b)[c].d", "f(a)(b)[c].d"),
])
def test_minimal_parentheses(text: str, canonical: str) -> None:
    """A tree built without the author's parentheses gets exactly those the grammar's precedence needs."""
    expr = _without_parens(parse_expression(text))
    assert format_expr(expr) == canonical
    assert parse_expression(canonical) == expr


def _without_parens(node):
    """A copy of a syntax tree with the author's parentheses forgotten."""
    if isinstance(node, tuple):
        return tuple(_without_parens(x) for x in node)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        changes = {f.name: _without_parens(getattr(node, f.name)) for f in dataclasses.fields(node)}
        if "parens" in changes:
            changes["parens"] = False
        return dataclasses.replace(node, **changes)
    return node


@pytest.mark.parametrize("text", ["a + (b * c)", "((x)) |> f", "(a |> f) ** 2", "x |> (f |> g)", "-(1)",
                                  "[x for (i, j) in y]", "(a if b else c)"])
def test_author_parentheses_are_kept(text: str) -> None:
    """Parentheses the author wrote for clarity survive formatting (doubled ones collapse to one pair)."""
    out = format_expr(parse_expression(text))
    assert out == text.replace("((x))", "(x)")
    assert format_expr(parse_expression(out)) == out


def test_keywords_match_the_grammar() -> None:
    """The printer's keyword list is exactly the grammar's keywords."""
    words = {t.pattern.value for t in _parser().terminals
             if t.pattern.type == "str" and t.pattern.value.isidentifier()}
    assert words == KEYWORDS


@pytest.mark.parametrize("word", sorted(KEYWORDS))
def test_reserved_words_by_position(word: str) -> None:
    """Keywords are contextual: which ones the YAML reader refuses as targets and output names."""
    def parses(text: str) -> bool:
        try:
            parse(text)
        except ArchError:
            return False
        return True

    assert parses(f"block A() {{ {word} = 1 }}") == (word not in STATEMENT_WORDS)
    assert parses(f"block A() {{ out {word} = 1 }}") == (word not in EXPRESSION_WORDS)
    assert parses(f"block {word}({word}: {word}) {{ in {word}: {word}[N]; let {word} = 1 }}")


def test_keyword_named_layers_get_a_separator() -> None:
    """``if = ...`` after an expression needs a `;`, or `if` would read as the keyword; `block` is no keyword."""
    text = "block A() { x = 1; block = f; if = 2\n y = reparam { a = 1; for = 2 } }"
    module = parse(text)
    text = roundtrip(module)
    assert "  x = 1\n  block = f;\n  if = 2\n" in text and "    a = 1;\n    for = 2\n  }" in text


# -- random trees --------------------------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True).filter(lambda s: s not in KEYWORDS)
ANY_NAMES = NAMES | st.sampled_from(sorted(KEYWORDS))        # where the grammar takes keywords as names
REF_NAMES = NAMES | st.sampled_from(sorted(KEYWORDS - EXPRESSION_WORDS))
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
BINOPS = ("or", "and", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "//", "%", "@", "**")
LEAVES = st.one_of(
    st.builds(A.Num, st.integers(0, 10**20) | st.floats(min_value=0.0, allow_nan=False)),
    st.builds(A.Str, TEXT), st.builds(A.Const, st.sampled_from([True, False, None])), st.builds(A.Name, REF_NAMES),
)
KEYS = st.builds(A.Name, ANY_NAMES) | st.builds(A.Str, TEXT)


def tuples(elements: st.SearchStrategy, max_size: int = 3, min_size: int = 0) -> st.SearchStrategy:
    """Tuples of ``elements``."""
    return st.lists(elements, min_size=min_size, max_size=max_size).map(tuple)


@st.composite
def comprehensions(draw: st.DrawFn, e: st.SearchStrategy) -> A.Comprehension:
    """``[..]``, ``seq[..]`` and ``seq{key: ..}`` comprehensions (a key only with ``seq``)."""
    seq = draw(st.booleans())
    clause = st.builds(A.CompFor, tuples(ANY_NAMES, 2, 1), e)
    return A.Comprehension(elt=draw(e), clauses=draw(tuples(clause, 2, 1)), cond=draw(st.none() | e),
                           key=draw(st.none() | KEYS) if seq else None, seq=seq)


def compound(e: st.SearchStrategy) -> st.SearchStrategy:
    """Every non-leaf expression node over sub-expressions ``e``."""
    return st.one_of(
        st.builds(A.BinOp, st.sampled_from(BINOPS), e, e), st.builds(A.UnaryOp, st.sampled_from(["-", "not"]), e),
        st.builds(A.IfExpr, e, e, st.none() | e), st.builds(A.Pipe, e, e),
        st.builds(A.Call, e, tuples(e), tuples(st.tuples(REF_NAMES, e), 2)), st.builds(A.Index, e, e),
        st.builds(A.Attr, e, ANY_NAMES), st.builds(A.ListLit, tuples(e), st.booleans()),
        st.builds(A.TupleLit, tuples(e)), st.builds(A.SeqNamed, tuples(st.tuples(KEYS, e))),
        st.builds(A.Reparam, tuples(st.tuples(ANY_NAMES, e))),
        comprehensions(e),
    )


EXPRS = st.recursive(LEAVES, compound, max_leaves=10)
TYPE_NAMES = st.recursive(st.builds(A.TypeName, ANY_NAMES),
                          lambda t: st.builds(A.TypeName, ANY_NAMES, tuples(t, 2, min_size=1)), max_leaves=3)
TENSOR_TYPES = st.builds(A.TensorTypeExpr, tuples(EXPRS | st.just(A.Rest()), 4), st.none() | ANY_NAMES)
TARGETS = ANY_NAMES.filter(lambda n: n not in STATEMENT_WORDS)
STMTS = st.one_of(
    st.builds(A.InputStmt, ANY_NAMES, TENSOR_TYPES, st.booleans()),
    st.builds(A.OutputStmt, st.none(), st.none(), EXPRS),
    st.builds(A.OutputStmt, ANY_NAMES.filter(lambda n: n not in EXPRESSION_WORDS), st.none() | TENSOR_TYPES, EXPRS),
    st.builds(A.Assign, tuples(TARGETS, 3, 1), EXPRS),
    st.builds(A.Assign, ANY_NAMES.map(lambda n: (n,)), EXPRS, st.just(True)),
)
PARAMS = st.lists(st.builds(A.ParamDecl, ANY_NAMES, TYPE_NAMES, st.none() | EXPRS), max_size=3,
                  unique_by=lambda p: p.name).map(tuple)
BLOCKS = st.builds(A.BlockDef, st.sampled_from(["block", "model"]), ANY_NAMES, PARAMS, tuples(STMTS, 4),
                   st.none() | TEXT)
ITEMS = st.one_of(st.builds(A.Import, TEXT, st.none() | ANY_NAMES),
                  st.builds(A.Assign, ANY_NAMES.map(lambda n: (n,)), EXPRS, st.just(True)), BLOCKS)
MODULES = st.builds(A.Module, tuples(ITEMS, 4))


@given(EXPRS)
def test_random_expressions_roundtrip(expr: A.Expr) -> None:
    """Any expression tree prints to text that parses back to the same tree."""
    text = format_expr(expr)
    assert parse_expression(text) == expr, text


@given(MODULES)
def test_random_modules_roundtrip(module: A.Module) -> None:
    """Any module survives .arch printing (idempotently) and YAML printing."""
    roundtrip(module)
    text = format_yaml(module)
    assert parse_yaml(text) == module, text


# -- comments ------------------------------------------------------------------------------------

# Strings, comments and anything else in .arch text: comments are the `#...` matches.
_TOKENS = re.compile(r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|#[^\n]*""")


def arch_comments(text: str) -> list[str]:
    """The comments of .arch text, in order (trailing whitespace is not kept)."""
    return [m.group().rstrip() for m in _TOKENS.finditer(text) if m.group().startswith("#")]


def yaml_text_comments(text: str) -> list[str]:
    """The comments of YAML text, in order (found through PyYAML's scanner)."""
    import yaml

    scalars = [(t.start_mark.index, t.end_mark.index, t.style in ("|", ">"))
               for t in yaml.scan(text, Loader=yaml.SafeLoader) if isinstance(t, yaml.ScalarToken)]
    return [c.text for c in yaml_comments(text, scalars)]


SPEC = '''# File header: what this spec is.
# Second line of the header.

import "std/blocks.arch"  # the library

let widths = [16, 32]  # per stage
let depth = 2

# A residual unit.
block Unit(c: int) {  # after the brace
  "Doc string."  # on the doc
  in x: [N, C, H, W]
  # the main path
  conv = Conv2d(c, 3, padding=1)  # 3x3
  bn = BatchNorm2d()

  # the shortcut group
  out x |> conv |> bn   # inside
      |> relu + x
  # before the closing brace
}  # after the block

model Net() {
  in image: [N, 3, H, W]
  rep = reparam {
    a = Conv2d(16, 3, padding=1)  # a branch
    b = Conv2d(16, 1)
  }
  out image |> rep |> Unit(16)
}
# The end.
'''


def test_comments_and_groups_survive_fmt() -> None:
    text = format_module(parse(SPEC))
    assert arch_comments(text) == arch_comments(SPEC)
    assert text.startswith("# File header: what this spec is.\n# Second line of the header.\n\nimport")
    assert 'import "std/blocks.arch"  # the library\n\nlet widths = [16, 32]  # per stage\nlet depth = 2\n' in text
    assert "\n\n# A residual unit.\nblock Unit(c: int) {  # after the brace\n  \"Doc string.\"  # on the doc\n" in text
    assert "  bn = BatchNorm2d()\n\n  # the shortcut group\n  # inside\n  out x |> conv |> bn |> relu + x\n" in text
    assert "  # before the closing brace\n}  # after the block\n" in text
    assert text.endswith("}\n\n# The end.\n")
    assert format_module(parse(text)) == text


@pytest.mark.parametrize("first", ["arch", "yaml"])
def test_comments_survive_conversion_both_ways(first: str) -> None:
    module = parse(SPEC)
    if first == "yaml":
        module = parse_yaml(format_yaml(module))
    as_yaml = format_yaml(module)
    assert yaml_text_comments(as_yaml) == arch_comments(SPEC)
    back = format_module(parse_yaml(as_yaml))
    assert arch_comments(back) == arch_comments(SPEC)
    assert format_yaml(parse_yaml(as_yaml)) == as_yaml                  # YAML formatting is idempotent too
    assert format_module(parse(back)) == back


def test_long_yaml_values_wrap_as_literal_blocks() -> None:
    """A reparam block or a long pipeline is a `|-` block laid out like .arch, not a 250-column line."""
    spec = ("block B(c: int) {\n  in x: [N, C, H, W]\n  out x |> reparam {\n"
            "    dense = seq[Conv2d(c, 3, padding=1, bias=false), BatchNorm2d(), relu, Conv2d(c, 3, padding=1)]\n"
            "    one = seq[Conv2d(c, 1, bias=false), BatchNorm2d()]  # 1x1\n  }\n}\n")
    text = format_yaml(parse(spec))
    assert all(len(line) <= LINE_WIDTH for line in text.splitlines())
    assert "      - out: |-\n          x |> reparam {\n" in text
    assert parse_yaml(text) == parse(spec)
    assert yaml_text_comments(text) == ["# 1x1"]


COMMENT_TEXT = st.text(st.characters(whitelist_categories=("L", "N", "P", "S"), blacklist_characters="\x85"),
                       max_size=12).map(lambda s: "# " + s)


@given(MODULES, st.lists(st.tuples(st.integers(0, 10**6), st.booleans(), COMMENT_TEXT), max_size=6))
def test_random_comments_keep_text_and_order(module, placements) -> None:
    """Comments put anywhere between or after lines of any module keep their text and order through
    fmt, .arch -> YAML -> .arch, and formatting is idempotent in both forms."""
    lines = format_module(module).split("\n")
    for position, trailing, comment in placements:
        i = position % len(lines)
        if trailing and lines[i].strip():
            lines[i] += "  " + comment
        else:
            lines.insert(i, comment)
    text = "\n".join(lines)
    expected = arch_comments(text)
    parsed = parse(text)
    formatted = format_module(parsed)
    assert arch_comments(formatted) == expected
    assert format_module(parse(formatted)) == formatted
    as_yaml = format_yaml(parsed)
    assert yaml_text_comments(as_yaml) == expected
    assert format_yaml(parse_yaml(as_yaml)) == as_yaml
    assert arch_comments(format_module(parse_yaml(as_yaml))) == expected


@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.name for p in SPEC_FILES])
def test_shipped_specs_are_formatted_and_convert_with_their_comments(path: Path) -> None:
    """`archdsl fmt --check specs/ examples/` passes, and each file's comments survive YAML and back."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".arch":
        module = parse(text, str(path))
        assert format_module(module) == text, f"run: archdsl fmt --in-place {path}"
        comments = arch_comments(text)
    else:
        module = parse_yaml(text, str(path))
        assert format_yaml(module) == text, f"run: archdsl fmt --in-place {path}"
        comments = yaml_text_comments(text)
    assert yaml_text_comments(format_yaml(module)) == comments
    assert arch_comments(format_module(module)) == comments
