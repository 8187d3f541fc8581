"""The model zoo: every model of the shipped ``specs/*.arch`` files, by its reference name.

``archdsl.zoo.build("resnet50")`` elaborates the model of that name from the spec file that defines it;
``archdsl.compile("resnet50")`` and ``archdsl build resnet50`` resolve names through :func:`spec_path`.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.resources
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archdsl.errors import ArchError, Diagnostic, UsageError

if TYPE_CHECKING:
    from archdsl.ir.graph import Graph

SPEC_SUFFIXES = (".arch", ".yaml", ".yml")

__all__ = ["build", "compile", "models_in", "names", "scan_models", "spec_dir", "spec_files", "spec_path"]


def spec_dir() -> Path:
    """The folder of the shipped specs (the ``archdsl.specs`` package)."""
    folders = list(importlib.import_module("archdsl.specs").__path__)      # a folder of files, as archdsl is always installed
    if len(folders) == 1 and os.path.isdir(folders[0]):
        return Path(folders[0])
    return Path(str(importlib.resources.files("archdsl.specs")))


def names() -> list[str]:
    """Every zoo model name, sorted (models defined in ``specs/*.arch``, not in ``specs/std/``)."""
    return sorted(_index())


def spec_path(name: str) -> Path | None:
    """The spec file that defines the model ``name``, or None when the zoo has no such model."""
    path = _index().get(name)
    return Path(path) if path is not None else None


def compile(name: str, **params: Any) -> Graph:  # noqa: A001
    """Compile the zoo model ``name`` to a verified Graph (``params`` override the model's parameters)."""
    from archdsl.api import compile as compile_spec

    return compile_spec(_require(name), name, **params)


def build(name: str, seed: int | None = 0, **params: Any):
    """Build the zoo model ``name`` as an ``nn.Module`` with PyTorch-default initialisation under ``seed``."""
    from archdsl.api import build_zoo

    return build_zoo(name, _require, seed, params)


def _require(name: str) -> Path:
    """The spec path of ``name``; a UsageError with a suggestion when the zoo has no such model."""
    path = spec_path(name)
    if path is None:
        close = difflib.get_close_matches(name, names(), n=1)
        raise UsageError(Diagnostic(f"the zoo has no model named '{name}'",
                                    hint=f"did you mean '{close[0]}'?" if close else
                                    "list the models with archdsl.zoo.names()"))
    return path


def spec_files() -> list[Path]:
    """The shipped spec files that make up the zoo (``specs/*.arch`` and YAML specs; not ``specs/std/``)."""
    return [Path(path) for path, _, _ in _spec_stamps()]


def spec_stamps() -> tuple[tuple[str, int, int], ...]:
    """(path, modification time, size) of each spec file of the zoo, sorted by path: what the zoo index and a
    cached zoo build are keyed by (an edit, a new file or a removed one gives other stamps)."""
    return tuple(_spec_stamps())


def _spec_stamps() -> list[tuple[str, int, int]]:
    """(path, modification time, size) of each spec file of the zoo, sorted by path (one ``os.scandir``)."""
    out = []
    with os.scandir(spec_dir()) as it:
        for e in it:
            if e.name.endswith(SPEC_SUFFIXES) and e.is_file():
                st = e.stat()
                out.append((e.path, st.st_mtime_ns, st.st_size))
    return sorted(out)


def _index() -> dict[str, str]:
    """Model name -> the path of its defining file; files are re-read only when their modification time changes.

    ``.arch`` files are scanned for top-level ``model NAME(`` headers (:func:`scan_models`) instead of parsed:
    naming a zoo model then costs microseconds per file, not a parse of every file. A name defined twice
    resolves to the first file in sorted order; the zoo tests refuse both that and a file whose scan differs
    from its parse.
    """
    return _index_of(tuple(_spec_stamps()))


@functools.lru_cache(maxsize=4)
def _index_of(files: tuple[tuple[str, int, int], ...]) -> dict[str, str]:
    """The index of these files (path, modification time, size); kept in the compile cache between processes,
    under a key of those stamps (and archdsl's code, as every entry). Paths stay strings (a zoo build looks up
    one name: a Path for each of the others would cost more than the rest of the lookup)."""
    from archdsl import compilecache

    key = compilecache.key_of("zoo-index", files) if compilecache.cache_dir() is not None else None
    entry = compilecache.load(key) if key is not None else None
    if entry is not None and isinstance(entry.meta.get("index"), dict):
        index = entry.meta["index"]
        if all(isinstance(k, str) and isinstance(v, str) for k, v in index.items()):
            return index
    index = _scan_index(files)
    if key is not None:
        compilecache.store(compilecache.Entry(key, {"index": index}, "", ""))
    return index


def _scan_index(files: tuple[tuple[str, int, int], ...]) -> dict[str, str]:
    index: dict[str, str] = {}
    for path, mtime, _ in files:
        try:
            models = _models_in(path, mtime)
        except ArchError:
            continue
        for model in models:
            index.setdefault(model, path)         # the zoo tests refuse a name defined in two files
    return index


@functools.lru_cache(maxsize=256)
def _models_in(path: str, mtime: int) -> tuple[str, ...]:
    """Names of the models a spec file defines itself (scanned for .arch, parsed for YAML)."""
    file = Path(path)
    if file.suffix == ".arch":
        return scan_models(file.read_text(encoding="utf-8"))
    return models_in(file)


# Strings and comments (matched first, so nothing inside them counts), brackets, and `model NAME(` headers.
_HEADER = r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|#[^\n]*|[(\[{]|[)\]}]|\bmodel\s+([A-Za-z_][A-Za-z0-9_]*)\s*\("""


@functools.cache
def _header() -> re.Pattern[str]:
    """_HEADER compiled, on the first scan (a zoo build whose index is cached never scans)."""
    return re.compile(_HEADER)


def scan_models(text: str) -> tuple[str, ...]:
    """Names in the ``model NAME(`` headers of .arch text outside every bracket, string and comment.

    Equals the parsed file's model names for every file that parses (a block body is inside braces, so a
    name, string or comment there never matches); a test holds this for every shipped spec.
    """
    names: list[str] = []
    depth = 0
    for m in _header().finditer(text):
        tok = m.group()
        if m.group(1) is not None:
            if depth == 0:
                names.append(m.group(1))
            depth += 1                           # the header's own '('
        elif tok in "([{":
            depth += 1
        elif tok in ")]}":
            depth = max(depth - 1, 0)
    return tuple(names)


def models_in(path: Path) -> tuple[str, ...]:
    """Names of the models the spec file ``path`` defines itself; raises ParseError when it does not parse."""
    from archdsl.elaborate.loader import parse_source
    from archdsl.syntax import ast as A

    module = parse_source(path.read_text(encoding="utf-8"), str(path))
    return tuple(item.name for item in module.items if isinstance(item, A.BlockDef) and item.kind == "model")
