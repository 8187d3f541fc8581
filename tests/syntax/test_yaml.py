"""The YAML front end: the same trees as .arch, positions in errors, hostile input, same elaborated IR."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from archdsl.elaborate import elaborate_model, load, model_names
from archdsl.elaborate.loader import Loader
from archdsl.errors import ArchError, LimitError, ParseError
from archdsl.ir.printer import print_graph
from archdsl.syntax import ast as A
from archdsl.syntax.parser import parse
from archdsl.syntax.yaml_frontend import parse_yaml
from archdsl.syntax.yaml_printer import format_yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "first_spec.yaml"

ARCH = r'''
import "std/blocks.arch"
import "lib.arch" as lib
let widths = [16, 32]
block B(c: int, ks: list[int] = [3]) {
  "Doc\nover two lines."
  in x: [N, C, H, W]
  in ids: int64[N, T]
  a, b = split(x, 2)
  let k = c // 2
  out a |> lib.f(k=k)
  out y: [N, k] = b
}
model M() {
  in x: [N, 3]
  out x |> B(4)
}
'''

YAML = '''
imports: [std/blocks.arch, {path: lib.arch, as: lib}]
let: {widths: "[16, 32]"}
blocks:
  B:
    doc: |-
      Doc
      over two lines.
    params: {c: int, ks: "list[int] = [3]"}
    body:
      - in: {x: "[N, C, H, W]", ids: "int64[N, T]"}
      - a, b: split(x, 2)
      - let: {k: c // 2}
      - out: a |> lib.f(k=k)
      - out: {name: y, type: "[N, k]", value: b}
models:
  M:
    body:
      - in: {x: "[N, 3]"}
      - out: x |> B(4)
'''


def test_hand_written_yaml_matches_arch() -> None:
    """The YAML form of a spec gives exactly the tree the .arch text gives."""
    assert parse_yaml(YAML, "spec") == parse(ARCH, "spec")


def test_list_document_keeps_item_order() -> None:
    """A list of section mappings lets sections repeat, so any item order round-trips."""
    module = parse("block A() { out 1 }\nmodel M() { in x: [N]\n out x }\nblock B() { out 2 }\nlet z = 1\n")
    text = format_yaml(module)
    assert text.startswith("- blocks:") and parse_yaml(text) == module


def test_spans_point_into_the_yaml() -> None:
    """Nodes built from YAML carry the YAML file's line and column."""
    block = parse_yaml(YAML, "s.yaml").blocks["B"]
    assert (block.span.line, block.span.column) == (5, 3)
    assign = block.body[2]
    assert assign.span.line == 12 and (assign.value.span.line, assign.value.span.column) == (12, 15)
    named = block.body[-1]
    assert (named.value.span.line, named.value.span.column) == (15, 47)


ERRORS = [
    ("blocks:\n  A:\n    body:\n      - y: 'x +* 2'\n", "4:16", "unexpected '*'"),
    ("blocks:\n  A:\n    body:\n      - y: x +* 2\n", "4:15", "unexpected '*'"),
    ('blocks:\n  A:\n    body:\n      - y: "f(\\"a\\") +"\n', "4:20", "unexpected end of file"),  # escapes: approximate
    ("blocks:\n  A:\n    body:\n      - y: |\n          x +\n            * 2\n", "6:13", "unexpected '*'"),
    ("blocks:\n  A:\n    params: {a: 'int = 1 +'}\n", "3:26", "unexpected end of file"),
    ("blocks:\n  A:\n    params: {a: 'int int'}\n", "3:22", "unexpected 'int'"),
    ("blocks:\n  A:\n    body:\n      - in: {x: '[N, C'}\n", "4:18", "this '[' is never closed"),
    ("let:\n  x: '1'\n  x: '2'\n", "3:3", "duplicate key 'x' in let"),
    ("block:\n  A: {}\n", "1:1", "unknown section 'block'"),
    ("blocks:\n  A: {bdy: []}\n", "2:7", "unknown key 'bdy' in block 'A'"),
    ("blocks:\n  A:\n    body: {x: 1}\n", "3:11", "the body of block 'A' must be a list, not a mapping"),
    ("blocks:\n  A:\n    body:\n      - {a: '1', b: '2'}\n", "4:9", "a statement is a mapping with exactly one key"),
    ("blocks:\n  A:\n    body:\n      - out: {value: x}\n", "4:14", "a named output needs a 'name' key"),
    ("blocks:\n  A:\n    body:\n      - in, b: f()\n", "4:9", "target 'in' is a reserved word here"),
    ("let:\n  a, b: '1'\n", "2:3", "`let` binds one name"),
    ("blocks:\n  2x: {}\n", "2:3", "block '2x' is not a valid name"),
    ("blocks:\n  A:\n    body:\n      - out: {name: true, value: x}\n", "4:21", "output 'true' is a reserved word here"),
    ("let:\n  x:\n", "2:5", "an expression is missing"),
    ("imports: [{path: a.arch, as: 3}]\n", "1:30", "alias '3' is not a valid name"),
    ("- 1\n", "1:3", "a YAML spec is a mapping of sections"),
    ("hello\n", "1:1", "a YAML spec is a mapping of sections"),
    ("blocks: [\n", "2:1", "invalid YAML"),
    ("let: {}\n---\nlet: {}\n", "2:1", "invalid YAML: but found another document"),
    ("let: {x: '\x07'}\n", "1:11", "invalid YAML: special characters are not allowed"),
    ("blocks: !!python/object:os.system {}\n", "1:9", "the YAML tag '!!python/object:os.system' is not allowed"),
    ("let:\n  x: !!python/object/apply:os.system ['ls']\n", "2:6", "the YAML tag"),
    ("let:\n  x: !!binary aGVsbG8=\n", "2:6", "the YAML tag '!!binary'"),
    ("let: !!set {a}\n", "1:6", "the YAML tag '!!set'"),
    ("let:\n  <<: {x: '1'}\n", "2:3", "YAML merge keys ('<<') are not supported"),
    ("let: &a {x: *a}\n", "1:6", "an expression must be a string, not a mapping"),
]


@pytest.mark.parametrize(("text", "where", "message"), ERRORS, ids=[e[2] for e in ERRORS])
def test_errors_name_the_yaml_position(text: str, where: str, message: str) -> None:
    """Every malformed document is a ParseError at the right YAML line:col, never a traceback."""
    with pytest.raises(ParseError) as info:
        parse_yaml(text, "bad.yaml")
    rendered = info.value.render()
    assert rendered.startswith(f"bad.yaml:{where}: error: {message}"), rendered


@pytest.mark.usefixtures("hang_guard")
def test_alias_bomb_is_refused() -> None:
    """A long expression reused through aliases many times exceeds the expansion budget (parsed once)."""
    body = "\n".join(["      - x: &e '[" + "a, " * 300 + "a]'"] + ["      - x: *e"] * 5000)
    with pytest.raises(LimitError, match="expands to more than"):
        parse_yaml(f"blocks:\n  A:\n    body:\n{body}\n", "bomb.yaml")


@pytest.mark.usefixtures("hang_guard")
def test_billion_laughs_is_refused_quickly() -> None:
    """The classic nested-alias document fails at once: nothing is expanded before it is checked."""
    levels = ["l0: &l0 lol"] + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    text = "let:\n" + "".join(f"  {line}\n" for line in levels) + "  x: *l9\n"
    with pytest.raises(ParseError, match="an expression must be a string, not a list"):
        parse_yaml(text)


@pytest.mark.parametrize("text", ["let: " + "[" * 1500 + "]" * 1500 + "\n", "- " * 1500 + "x\n",
                                  "let: {x: '" + "(" * 500 + ")" * 500 + "'}\n",
                                  "let: {x: '" + "1" * (5 * 1024 * 1024) + "'}\n"],
                         ids=["flow", "block", "expression", "huge"])
def test_deep_or_huge_documents_are_limit_errors(text: str) -> None:
    """Deep nesting and oversized files are refused with a LimitError."""
    with pytest.raises(LimitError):
        parse_yaml(text)


@given(st.text(max_size=80))
def test_random_text_never_crashes(text: str) -> None:
    """Arbitrary text parses or raises an ArchError."""
    try:
        parse_yaml(text)
    except ArchError:
        pass


YAML_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda v: st.lists(v, max_size=3) | st.dictionaries(st.text(max_size=5), v, max_size=3),
                           max_leaves=12)
SECTION_LIKE = st.dictionaries(st.sampled_from(["imports", "let", "blocks", "models", "body"]), YAML_VALUES,
                               max_size=3)


@given(SECTION_LIKE | YAML_VALUES)
def test_random_documents_never_crash(document: object) -> None:
    """Arbitrary YAML data (close to the schema or not) parses or raises an ArchError."""
    try:
        parse_yaml(yaml.safe_dump(document))
    except ArchError:
        pass


SPEC = '''
let widths = [16, 32]
block Basic(planes: int, stride: int = 1) {
  "ResNet basic block."
  in x: [N, C, H, W]
  conv1 = Conv2d(planes, 3, stride=stride, padding=1, bias=false)
  bn1 = BatchNorm2d()
  conv2 = Conv2d(planes, 3, padding=1, bias=false)
  bn2 = BatchNorm2d()
  downsample = seq[Conv2d(planes, 1, stride=stride, bias=false), BatchNorm2d()] if stride != 1 or C != planes
  out relu(x |> conv1 |> bn1 |> relu |> conv2 |> bn2 + x |> downsample)
}
block Rep(c: int) {
  in x: [N, C, H, W]
  rbr = reparam {
    dense = seq[Conv2d(c, 3, padding=1, bias=false), BatchNorm2d()]
    one = seq[Conv2d(c, 1, bias=false), BatchNorm2d()]
    identity = BatchNorm2d() if C == c
  }
  out relu(x |> rbr)
}
model Tiny(num_classes: int = 10) {
  in image: [N, 3, H, W]
  stem = seq{conv: Conv2d(widths[0], 3, padding=1), "norm": BatchNorm2d()}
  layers = seq[Basic(w, stride=1 if i == 0 else 2) for i, w in enumerate(widths)]
  rep = Rep(widths[-1])
  let k = widths[-1] * 2 // 2
  fc = Linear(num_classes * k // widths[-1])
  out logits: [N, num_classes] = image |> stem |> relu |> layers |> rep |> AdaptiveAvgPool2d(1) |> flatten |> fc
}
'''


def test_yaml_elaborates_to_the_same_graph() -> None:
    """A model elaborated from .arch and from its YAML conversion gives the same IR (spans aside)."""
    ns_a, loader_a = load(SPEC)
    graph_a = elaborate_model(ns_a, loader_a, "Tiny")
    loader_b = Loader()
    ns_b = loader_b.load_text(format_yaml(parse(SPEC)), "tiny.yaml")
    graph_b = elaborate_model(ns_b, loader_b, "Tiny")
    no_spans = {"span": True, "input_spans": True, "nodes": {"__all__": {"span"}}}
    assert graph_a.model_dump(exclude=no_spans) == graph_b.model_dump(exclude=no_spans)
    assert print_graph(graph_a) == print_graph(graph_b)
    assert graph_b.span is not None and graph_b.span.file == "tiny.yaml"


ARCH_FILES = sorted(p for d in ("specs", "examples") for p in (ROOT / d).glob("*.arch"))


@pytest.mark.parametrize("path", ARCH_FILES, ids=[p.name for p in ARCH_FILES])
def test_spec_files_elaborate_the_same_from_yaml(path: Path) -> None:
    """Every model of every shipped spec gives the same IR from its YAML conversion."""
    loader_a = Loader()
    ns_a = loader_a.load_file(str(path))
    loader_b = Loader()
    ns_b = loader_b.load_text(format_yaml(ns_a.module), str(path.with_suffix(".yaml")))
    for name in model_names(ns_a):
        try:
            graph_a = elaborate_model(ns_a, loader_a, name)
        except ArchError:
            continue                            # a broken spec is tests/specs' business, not this file's
        assert print_graph(elaborate_model(ns_b, loader_b, name)) == print_graph(graph_a)


def test_example_spec_elaborates() -> None:
    """examples/first_spec.yaml is a working CNN with torchvision-style parameter names."""
    ns, loader = load(str(EXAMPLE))
    graph = elaborate_model(ns, loader, "SmallCNN")
    assert [str(d) for d in graph.output_types()["logits"].shape] == ["N", "10"]
    assert {"stem.conv.weight", "stages.2.1.branch.1.bn.bias", "fc.weight"} <= set(graph.params)


def test_module_api_rejects_a_duplicate_parameter() -> None:
    """YAML mappings cannot repeat a key, so a repeated parameter cannot be written as YAML."""
    module = A.Module((A.BlockDef("block", "B", (A.ParamDecl("a", A.TypeName("int")), A.ParamDecl("a", A.TypeName("int"))), ()),))
    with pytest.raises(ParseError, match="declared twice"):
        format_yaml(module)


@pytest.mark.parametrize(("arch", "cond"), [
    ("[N, where * 2]", None),                                   # a size symbol spelled `where`
    ("[N, 3, H, W] where H % 32 == 0", "H % 32 == 0"),
    ("[N, where] where where % 2 == 0", "where % 2 == 0"),
])
def test_where_conditions_start_after_the_type(arch: str, cond: str | None) -> None:
    module = parse(f"model M() {{\n  in x: {arch}\n  out x |> relu\n}}\n", "m")
    assert parse_yaml(format_yaml(module), "m") == module
    assert (module.items[0].body[0].where is not None) == (cond is not None)


@pytest.mark.parametrize("doc", ["\n", "\n\n", "a\n\n", " \n", "a\n", "\na", "a\n\n\nb"])
def test_doc_strings_of_line_breaks_round_trip(doc: str) -> None:
    # a doc ending in line breaks that a literal block keeps ("|+") once closed its document with an indented
    # "...", which is not YAML (found by the random comment test)
    module = A.Module((A.BlockDef("block", "B", (), (), doc),), file="m")
    assert parse_yaml(format_yaml(module), "m") == module
