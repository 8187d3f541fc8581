"""Every error kind has a hint (the README promises one): in the modules listed here, every error is built
with one. (The golden catalogues check the same of each user-facing error kind: test_golden*.py.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import archdsl

ROOT = Path(archdsl.__file__).resolve().parent

# Modules whose every error carries a hint (error constructors written ``Diagnostic(message, span, hint)``,
# ``session.error(message, span, hint)`` (or ``error = self.session.error``) or ``OpError(message, hint)``).
HINTED = ["verify.py", "syntax/parser.py", "syntax/parse_errors.py", "commands/check.py", "elaborate/__init__.py",
          "elaborate/apply.py", "elaborate/blocks.py", "elaborate/dataflow.py", "elaborate/expressions.py",
          "elaborate/loader.py", "elaborate/shapes.py", "elaborate/containers.py", "elaborate/builtins.py",
          "elaborate/builder.py", "output.py", "saving.py", "zoo.py", "api.py"]
# Whole folders (relative to the repository root): every module in them that builds an error builds it with a hint
# (op shape rules and attribute checks, the torch and ONNX lowerings, the passes). A new module is covered at once.
HINTED_TREES = ["archdsl/ops", "archdsl/passes", "backends"]


def _error_calls(path: Path) -> list[tuple[int, ast.Call]]:
    """(line, call) for each Diagnostic/OpError/self.error construction of severity error in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        fn = node.func
        name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else None
        if name not in ("Diagnostic", "OpError", "error"):      # error: session.error, or a local alias of it
            continue
        severity = next((k.value for k in node.keywords if k.arg == "severity"), None)
        if isinstance(severity, ast.Constant) and severity.value != "error":
            continue
        found.append((node.lineno, node))
    return found


def _hint(call: ast.Call) -> ast.expr | None:
    name = call.func.id if isinstance(call.func, ast.Name) else call.func.attr
    position = 1 if name == "OpError" else 2
    given = {k.arg: k.value for k in call.keywords}
    return given.get("hint", call.args[position] if len(call.args) > position else None)


def _bare(path: Path) -> list[int]:
    """Lines of the errors in ``path`` built without a hint (a literal None counts as none)."""
    return [line for line, call in _error_calls(path)
            if _hint(call) is None or (isinstance(_hint(call), ast.Constant) and _hint(call).value is None)]


@pytest.mark.parametrize("module", HINTED)
def test_every_error_in_the_module_has_a_hint(module: str) -> None:
    """No error is built without a hint."""
    path = ROOT / module
    assert _error_calls(path), f"{module} builds no errors: the list is stale"
    bare = _bare(path)
    assert not bare, f"{module}: errors without a hint at lines {bare}"


@pytest.mark.parametrize("tree", HINTED_TREES)
def test_every_error_in_the_tree_has_a_hint(tree: str) -> None:
    """No module under ``tree`` builds an error without a hint."""
    top = ROOT.parent / tree
    modules = sorted(top.rglob("*.py"))
    assert any(_error_calls(p) for p in modules), f"{tree} builds no errors: the list is stale"
    bare = {str(p.relative_to(ROOT.parent)): lines for p in modules if (lines := _bare(p))}
    assert not bare, f"errors without a hint (module: lines): {bare}"
