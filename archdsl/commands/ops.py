"""``archdsl ops [NAME]``: the op reference, read from the op declarations (nothing here is written twice).

Without NAME, every op by family, one line each; with NAME (``Conv2d`` or ``conv2d``), the op's
signature with types and defaults, its shape rule (the declaration's docstring), inputs, traits, the
parameters it creates on an example input, and a one-line example taken from the shipped specs.
``--markdown`` prints the whole reference as Markdown: ``archdsl ops --markdown > docs/ops.md``
regenerates docs/ops.md (a test fails when that file is stale).
"""

from __future__ import annotations

import argparse
import difflib
import functools
import importlib.resources
import inspect
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from archdsl.errors import ArchError, Diagnostic, UsageError

if TYPE_CHECKING:           # the registry and the syntax tree load when the command runs, not for `--help`
    from archdsl.ops.base import OpDef
    from archdsl.syntax import ast as A

EXAMPLE_INPUTS = ("[N, 8, 16, 16]", "[N, 16, 8]", "[N, 16]", "[N, 8, 4, 8, 8]")


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("ops", help="list the ops, or describe one (signature, shapes, parameters, example)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", metavar="NAME", help="an op, as written in a spec (Conv2d) or in the IR (conv2d)")
    p.add_argument("--markdown", action="store_true", help="the full reference as Markdown (docs/ops.md)")


# -- facts about one op ---------------------------------------------------------------------------

def _type(annotation: object) -> str:
    """A field's type as a user reads it: ``int | tuple[int, ...]``, ``"zeros" | "reflect"``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return " | ".join(_literal(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "none"
    if origin is not None:
        args = ", ".join("..." if a is Ellipsis else _type(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def _literal(value: object) -> str:
    """A Python value in .arch spelling."""
    if value is None or isinstance(value, bool):
        return {None: "none", True: "true", False: "false"}[value]
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (tuple, list)):
        inner = ", ".join(_literal(v) for v in value)
        return f"({inner},)" if isinstance(value, tuple) and len(value) == 1 else \
            (f"({inner})" if isinstance(value, tuple) else f"[{inner}]")
    return repr(value)


def signature(op: type[OpDef]) -> str:
    """``Conv2d(out_channels: int, kernel_size: int | tuple[int, ...], stride: ... = 1, ...)``."""
    fields = op.model_fields
    order = [n for n in op.positional if n in fields] + [n for n in fields if n not in op.positional]
    parts = []
    for name in order:
        field = fields[name]
        text = f"{name}: {_type(field.annotation)}"
        if not field.is_required():
            default = field.get_default(call_default_factory=True)
            text += f" = {_literal(default)}"
        parts.append(text)
    return f"{op.__name__}({', '.join(parts)})"


def _doc(op: type[OpDef]) -> str:
    """The declaration's docstring (the shape rule), or its base class's when it has none of its own."""
    return inspect.cleandoc(op.__doc__ or "")


def _inputs(op: type[OpDef]) -> str:
    if op.arity is None:
        return "a list of tensors"
    return {0: "none (it is a value of its own)", 1: "1 tensor"}.get(op.arity, f"{op.arity} tensors")


@dataclass(frozen=True)
class Example:
    """A call of the op as written in a shipped spec, and where."""

    text: str
    where: str


def _is_literal(e: A.Expr) -> bool:
    from archdsl.syntax import ast as A

    if isinstance(e, (A.Num, A.Const)) or (isinstance(e, A.Str) and "{" not in e.value):
        return True
    if isinstance(e, A.UnaryOp):
        return e.op == "-" and isinstance(e.operand, A.Num)
    if isinstance(e, (A.TupleLit, A.ListLit)):
        return not getattr(e, "seq", False) and all(_is_literal(i) for i in e.items)
    return False


def _calls(node: object):
    """Every Call in a syntax tree."""
    from archdsl.syntax import ast as A

    if isinstance(node, A.Call):
        yield node
    if isinstance(node, tuple):
        for item in node:
            yield from _calls(item)
    elif hasattr(node, "__dataclass_fields__") and not isinstance(node, type):
        for name in node.__dataclass_fields__:
            if name not in ("span", "trivia", "header", "doc_trivia", "end"):
                yield from _calls(getattr(node, name))


@functools.cache
def spec_examples() -> dict[type[OpDef], Example]:
    """The shortest all-literal call of each op in the shipped specs (first file wins a tie)."""
    from archdsl.ops.registry import lookup
    from archdsl.syntax import ast as A
    from archdsl.syntax.parser import parse
    from archdsl.syntax.printer import format_expr

    root = importlib.resources.files("archdsl.specs")
    found: dict[type[OpDef], Example] = {}
    for path in sorted(Path(str(root)).rglob("*.arch")):
        try:
            module = parse(path.read_text(encoding="utf-8"), str(path))
        except ArchError:                        # pragma: no cover - shipped specs parse (tests/specs)
            continue
        for call in _calls(module.items):
            op = lookup(call.func.id) if isinstance(call.func, A.Name) else None
            if op is None or not all(_is_literal(a) for a in (*call.args, *(v for _, v in call.kwargs))):
                continue
            text = format_expr(call)
            if op not in found or len(text) < len(found[op].text):
                found[op] = Example(text, str(path.relative_to(Path(str(root)))))
    return found


def _placeholder(name: str, annotation: object) -> object:
    """A small valid-looking value for a required attribute (axes 1, counts 2, shapes (2, 2))."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return _placeholder(name, args[0])
    if typing.get_origin(annotation) is tuple:
        return (2, 2)
    if annotation is float:
        return 0.1
    if annotation is int or typing.get_origin(annotation) is typing.Annotated:
        return {"dim": 1, "dim0": 1, "dim1": 2, "layer_idx": 0, "index": 0}.get(name, 2)
    return None


def example(op: type[OpDef]) -> Example | None:
    """A call from the shipped specs, else one with placeholder values for the required attributes."""
    found = spec_examples().get(op)
    if found is not None:
        return found
    values = {n: _placeholder(n, f.annotation) for n, f in op.model_fields.items() if f.is_required()}
    try:
        op(**values)
    except (ValueError, TypeError):
        return None
    positional = [_literal(values.pop(n)) for n in op.positional if n in values]
    return Example(f"{op.__name__}({', '.join(positional + [f'{k}={_literal(v)}' for k, v in values.items()])})", "")


@functools.cache
def example_params(op: type[OpDef]) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """(input type, ((parameter, "[shape] kind"), ...)) of the example applied to a small input, or None."""
    from archdsl.api import compile as compile_spec
    from archdsl.ir.graph import shape_str

    ex = example(op)
    if ex is None or op.arity != 1:
        return None
    for shape in EXAMPLE_INPUTS:
        try:
            graph = compile_spec(f"model M() {{\n  in x: {shape}\n  layer = {ex.text}\n  out x |> layer\n}}\n")
        except ArchError:
            continue
        return shape, tuple((name.removeprefix("layer."), f"{shape_str(p.shape)} {p.dtype}"
                             + (" (buffer)" if p.buffer else "")) for name, p in graph.params.items())
    return None


def families() -> dict[str, list[type[OpDef]]]:
    """Ops by family, in the registry's order."""
    from archdsl.ops.registry import all_ops

    out: dict[str, list[type[OpDef]]] = {}
    for op in all_ops():
        out.setdefault(op.family, []).append(op)
    return out


# -- output ---------------------------------------------------------------------------------------

def _summary(op: type[OpDef]) -> str:
    return (_doc(op).splitlines() or [""])[0]


def describe(op: type[OpDef]) -> str:
    """The terminal page for one op."""
    lines = [f"{op.__name__}  (IR name {op.name}; family {op.family})", "", "  " + signature(op), ""]
    lines += ["  " + line for line in _doc(op).splitlines()] + [""]
    lines.append(f"  inputs: {_inputs(op)}; outputs: {op.num_outputs}")
    lines.append(f"  traits: {', '.join(sorted(t.value for t in op.traits)) or 'none'}")
    params = example_params(op)
    if params is not None:
        shape, table = params
        listed = ", ".join(f"{n} {s}" for n, s in table) or "none"
        lines.append(f"  parameters (example on x: {shape}): {listed}")
    ex = example(op)
    if ex is not None:
        lines.append(f"  example: {ex.text}" + (f"   ({ex.where})" if ex.where else ""))
    return "\n".join(lines) + "\n"


def listing() -> str:
    """Every op, one line each, by family."""
    out = []
    for family, ops in families().items():
        out.append(f"{family}:")
        width = max(len(op.__name__) for op in ops)
        out += [f"  {op.__name__:<{width}}  {_summary(op)}" for op in ops]
    out.append("\n`archdsl ops NAME` describes one op.")
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def markdown() -> str:
    """docs/ops.md: every op by family, generated from the declarations."""
    groups = families()
    out = ["# Op reference", "",
           "Generated from the op declarations in `archdsl/ops/` by `archdsl ops --markdown > docs/ops.md`;",
           "do not edit by hand (a test fails when this file is stale). `archdsl ops NAME` shows the same in a",
           "terminal. Spell an op as its class name (`Conv2d`) or its IR name (`conv2d`).", ""]
    out += [f"- **{family}**: " + ", ".join(f"[{op.__name__}](#{op.__name__.lower()})" for op in ops)
            for family, ops in groups.items()]
    for family, ops in groups.items():
        out += ["", f"## {family}"]
        for op in ops:
            out += ["", f"### {op.__name__}", "", "```", signature(op), "```", "", _doc(op), "",
                    f"- IR name: `{op.name}`; inputs: {_inputs(op)}; outputs: {op.num_outputs}",
                    f"- traits: {', '.join(sorted(t.value for t in op.traits)) or 'none'}"]
            params = example_params(op)
            if params is not None:
                shape, table = params
                listed = ", ".join(f"`{n}` {_md(s)}" for n, s in table) or "none"
                out.append(f"- parameters (example on `x: {shape}`): {listed}")
            ex = example(op)
            if ex is not None:
                out.append(f"- example: `{ex.text}`" + (f" (specs/{ex.where})" if ex.where else ""))
    return "\n".join(out) + "\n"


def run(args: argparse.Namespace) -> int:
    """Print the reference (all ops, one op, or Markdown)."""
    if args.markdown:
        print(markdown(), end="")
        return 0
    if args.name is None:
        print(listing(), end="")
        return 0
    from archdsl.ops.registry import lookup, spellings

    op = lookup(args.name)
    if op is None:
        close = difflib.get_close_matches(args.name, spellings(), n=1)
        raise UsageError(Diagnostic(f"no op named {args.name!r}",
                                    hint=f"did you mean {close[0]!r}?" if close else "`archdsl ops` lists them all"))
    print(describe(op), end="")
    return 0
