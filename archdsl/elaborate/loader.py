"""Loading spec files into namespaces: imports by relative path, the shipped std library, cycles."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.resources
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archdsl.errors import Diagnostic, LimitError, SpecImportError
from archdsl.ir.types import Span
from archdsl.syntax import ast as A

MAX_IMPORT_DEPTH = 32
STD_PREFIX = "std/"
IMPORT_PATH_ENV = "ARCHDSL_IMPORT_PATH"     # extra folders imports may reach (os.pathsep-separated)
# Extra import roots set by the CLI's -I (a context variable, so that threads and nested calls do not leak them).
import_path: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("archdsl_import_path", default=())


@contextlib.contextmanager
def extra_import_path(folders: list[str] | tuple[str, ...]) -> Iterator[None]:
    """Allow imports from ``folders`` (and below) while the block runs (``archdsl -I DIR``)."""
    token = import_path.set(import_path.get() + tuple(folders))
    try:
        yield
    finally:
        import_path.reset(token)


@dataclass(eq=False)
class Namespace:
    """One loaded spec file: its blocks, top-level constants and imported namespaces."""

    module: A.Module
    file: str
    blocks: dict[str, A.BlockDef] = field(default_factory=dict)
    lets: dict[str, A.Assign] = field(default_factory=dict)
    aliases: dict[str, Namespace] = field(default_factory=dict)
    star: list[Namespace] = field(default_factory=list)
    let_values: dict[str, Any] = field(default_factory=dict)
    source: A.SourceText | None = None  # the .arch text ``module`` was parsed from (None: YAML), see A.release_body

    def find_block(self, name: str) -> tuple[A.BlockDef, Namespace] | None:
        """A block defined here or star-imported, with the namespace it lives in."""
        if name in self.blocks:
            return self.blocks[name], self
        for ns in self.star:
            found = ns.find_block(name)
            if found:
                return found
        return None

    def find_let(self, name: str) -> tuple[A.Assign, Namespace] | None:
        """A top-level constant defined here or star-imported."""
        if name in self.lets:
            return self.lets[name], self
        for ns in self.star:
            found = ns.find_let(name)
            if found:
                return found
        return None

    def visible_names(self) -> list[str]:
        """Every block, constant and alias name visible here (for did-you-mean)."""
        names = list(self.blocks) + list(self.lets) + list(self.aliases)
        for ns in self.star:
            names += ns.visible_names()
        return names


def parse_source(text: str, file: str) -> A.Module:
    """Parse .arch or YAML text, chosen by the file's extension.

    Syntax trees are immutable, so a file parsed once is reused while its text is unchanged
    (compiling the seven ResNets of one spec, or checking a file again, parses it once).
    """
    return _parse_cached(text, file)


@functools.lru_cache(maxsize=128)
def _parse_cached(text: str, file: str) -> A.Module:
    if file.endswith((".yaml", ".yml")):
        from archdsl.syntax.yaml_frontend import parse_yaml

        return parse_yaml(text, file)
    from archdsl.syntax.parser import parse

    return parse(text, file)


def std_path(name: str) -> Path:
    """Path of a file of the shipped standard library (``std/blocks.arch``)."""
    root = importlib.resources.files("archdsl.specs").joinpath("std")
    return Path(str(root)) / name[len(STD_PREFIX):]


class Loader:
    """Loads files once each, resolves imports and refuses cycles."""

    def __init__(self) -> None:
        self.roots: list[str] = []       # imports may reach these folders only (set by the first file loaded)
        self.cache: dict[str, Namespace] = {}
        self.sources: dict[str, str] = {}
        self.stack: list[str] = []
        self.import_spans: list[Span | None] = []     # the import statement that opened each file on the stack

    def load_text(self, text: str, file: str = "<string>") -> Namespace:
        """Load a spec given as text (imports resolve relative to the working directory)."""
        text = text.removeprefix("\ufeff")
        self.sources[file] = text
        self._set_roots(os.getcwd())
        return self._namespace(parse_source(text, file), file, text)

    def load_file(self, path: str, span: Span | None = None) -> Namespace:
        """Load a spec file, reusing an earlier load of the same file."""
        real = os.path.realpath(path)
        if not self.roots:
            self._set_roots(os.path.dirname(real))
        if real in self.stack:
            raise self._cycle_error(real, span)
        if real in self.cache:
            return self.cache[real]
        if len(self.stack) >= MAX_IMPORT_DEPTH:
            raise LimitError(Diagnostic(f"imports nest deeper than {MAX_IMPORT_DEPTH} files", span,
                                    "import the files you need directly instead of through long chains"), self.sources)
        text = self._read(path, real, span)
        self.sources[path] = text
        self.stack.append(real)
        self.import_spans.append(span)
        try:
            ns = self._namespace(parse_source(text, path), path, text)
        finally:
            self.stack.pop()
            self.import_spans.pop()
        self.cache[real] = ns
        return ns

    def _read(self, path: str, real: str, span: Span | None) -> str:
        """The text of a spec file, refusing oversized and unreadable files before parsing."""
        from archdsl.syntax.parser import MAX_SOURCE_BYTES

        try:
            if os.path.getsize(real) > MAX_SOURCE_BYTES:
                raise LimitError(Diagnostic(f"spec file '{path}' is larger than {MAX_SOURCE_BYTES // 2**20} MiB",
                                            span or Span(file=path), "split it into files that import each other"), self.sources)
            with open(real, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            what = "cannot be read as UTF-8 text" if isinstance(exc, UnicodeDecodeError) else "cannot be read"
            raise SpecImportError(Diagnostic(f"spec file '{path}' {what}", span, "check the import's path and the file"), self.sources) from None
        return text.removeprefix("\ufeff")     # a UTF-8 byte order mark is not part of the spec

    def _cycle_error(self, real: str, span: Span | None) -> SpecImportError:
        """An import cycle, naming the chain of files and pointing at each import on it."""
        start = self.stack.index(real)
        chain = " -> ".join(os.path.basename(p) for p in self.stack[start:] + [real])
        notes = tuple((f"{os.path.basename(self.stack[i - 1])} imports {os.path.basename(self.stack[i])} here",
                       self.import_spans[i]) for i in range(start + 1, len(self.stack)))
        return SpecImportError(Diagnostic(f"import cycle: {chain}", span,
                                          "move the shared blocks into a third file both import", notes=notes),
                               self.sources)

    def _namespace(self, module: A.Module, file: str, text: str) -> Namespace:
        ns = Namespace(module=module, file=file, source=None if file.endswith((".yaml", ".yml")) else A.SourceText(text))
        for item in module.items:
            if isinstance(item, A.Import):
                target = self._load_import(item, file)
                if item.alias:
                    ns.aliases[item.alias] = target
                else:
                    ns.star.append(target)
            elif isinstance(item, A.BlockDef):
                self._unique(ns, item.name, item.span)
                ns.blocks[item.name] = item
            elif isinstance(item, A.Assign):
                self._unique(ns, item.targets[0], item.span)
                ns.lets[item.targets[0]] = item
        return ns

    def _unique(self, ns: Namespace, name: str, span: Span) -> None:
        if name in ns.blocks or name in ns.lets:
            raise SpecImportError(Diagnostic(f"'{name}' is defined twice in this file", span,
                                          "rename one of them: blocks, models and constants share one namespace"), self.sources)

    def _set_roots(self, folder: str) -> None:
        """Imports may reach the first spec's folder, the shipped library and the extra import path."""
        extra = [p for p in os.environ.get(IMPORT_PATH_ENV, "").split(os.pathsep) if p] + list(import_path.get())
        self.roots = [os.path.realpath(p) for p in (folder, str(std_path(STD_PREFIX)), *extra)]

    def _load_import(self, item: A.Import, importer: str) -> Namespace:
        if item.path.startswith(STD_PREFIX):
            path = std_path(item.path)
        else:
            base = Path(importer).parent if not importer.startswith("<") else Path.cwd()
            path = base / item.path
        try:
            real = os.path.realpath(path)
            found = path.is_file()
        except (OSError, ValueError):      # a name too long for the file system, a NUL byte: not a file
            real, found = "", False
        if real and not any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in self.roots):
            raise SpecImportError(Diagnostic(
                f"import '{item.path}' reaches outside the spec's folder and the shipped library", item.span,
                f"imports may reach {self.roots[0]} and below; pass -I FOLDER (or set {IMPORT_PATH_ENV}) "
                "to allow another folder"), self.sources)
        if not found:
            shown = str(path) if len(str(path)) <= 100 else str(path)[:97] + "..."
            raise SpecImportError(Diagnostic(f"imported file '{item.path[:100]}' not found (looked at {shown})",
                                             item.span, "import paths are relative to the importing file; "
                                             "the shipped library is 'std/...'"), self.sources)
        return self.load_file(str(path), item.span)
