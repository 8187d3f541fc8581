"""A persistent compile cache: generated module source (and its code object) by a key of everything it depends on.

``archdsl.build`` of a spec file (``archdsl.zoo.build`` among them) and ``archdsl.load_built`` store what they
compiled here, as Python keeps ``__pycache__`` and torch inductor its kernels: a later process that asks for the
same thing reuses the generated source and its marshalled code object instead of parsing, elaborating, verifying
and generating again. What makes an entry valid:

* Its key is the SHA-256 of everything that determines the result: what is built (the spec file's path and text,
  the model name, the parameters and build flags; or the bytes of a graph.json), archdsl's code (its version and
  the size and modification time of every file of the package but the shipped specs, so an edited source tree
  never reuses stale code), and the Python version; entries of generated code add torch's version. A spec's
  imported files are recorded in the entry with the SHA-256 of their text (like a depfile) and checked again on
  every hit. A zoo build is stored under a second key as well, of the model name and the path, size and
  modification time of every zoo spec file (what the zoo index is keyed by), so its hit reads one entry.
* An entry starts with a format tag and holds its own key and the SHA-256 of its payload; anything else (a
  truncated, corrupt or foreign file) is ignored and rewritten, never executed.

Location: ``$ARCHDSL_CACHE_DIR``, else ``$XDG_CACHE_HOME/archdsl``, else ``~/.cache/archdsl``. ``ARCHDSL_CACHE_DIR=``
(empty) or ``ARCHDSL_NO_CACHE=1`` turns it off. Entries are written atomically (a temporary file, then
``os.replace``), so concurrent processes only ever see whole entries; a folder that cannot be created or written
means no cache, silently. At most :data:`MAX_ENTRIES` entries and :data:`MAX_BYTES` bytes are kept (the least
recently used go first). ``archdsl cache info`` / ``archdsl cache clear`` show and empty it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import marshal
import operator
import os
import stat
import sys
import tempfile
import time
import types
import zlib
from pathlib import Path
from typing import Any

FORMAT = b"archdsl-compile-cache 1\n"      # the first line of every entry
SUFFIX = ".entry"
SUBDIR = "v1"                              # entries of this format live in CACHE_DIR/v1
MAX_ENTRIES = 256
MAX_BYTES = 256 * 2**20
MAX_ENTRY_BYTES = 64 * 2**20               # a larger entry is neither written nor read
CACHE_DIR_ENV = "ARCHDSL_CACHE_DIR"
NO_CACHE_ENV = "ARCHDSL_NO_CACHE"
_STALE_TMP_SECONDS = 3600                  # a temporary file older than this was left by a killed writer

__all__ = ["Entry", "cache_dir", "clear", "fingerprint", "info", "key_of", "load", "store", "text_digest",
           "torch_version"]


def cache_dir() -> Path | None:
    """The cache folder, or None when the cache is turned off (the folder need not exist yet)."""
    folder = _folder()
    return Path(folder) if folder is not None else None


def _folder() -> str | None:
    """:func:`cache_dir` as a string (a hit reads two entries: no Path objects on its way)."""
    if os.environ.get(NO_CACHE_ENV, "").strip() not in ("", "0"):
        return None
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit is not None:
        return explicit if explicit.strip() else None
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "archdsl")
    try:
        home = os.path.expanduser("~")
    except (RuntimeError, KeyError, OSError):      # no home folder to speak of
        return None
    return os.path.join(home, ".cache", "archdsl") if home != "~" else None


@functools.lru_cache(maxsize=1)
def fingerprint() -> str:
    """SHA-256 of archdsl's code (its version; the relative path, size and modification time of every file of the
    package but its spec files) and the Python version: computed once per process, from ``os.scandir``.

    The shipped spec files (the ``archdsl.specs`` folder) are data, not code: every entry made from a spec file
    records that file and each file it imports with the SHA-256 of its text and checks them on each hit, and the
    zoo index's key holds each spec file's stamps, so their edits need not make every other entry stale (and a
    hit need not stat each of them: the fingerprint is paid by every process's first hit)."""
    import importlib
    import importlib.util

    import archdsl

    roots = [os.path.dirname(archdsl.__file__)]
    for name in ("archdsl.backends", "archdsl.grammar"):     # folders of their own in an editable install
        for folder in importlib.import_module(name).__path__:
            if not any(folder == r or folder.startswith(r + os.sep) for r in roots):
                roots.append(folder)
    stamps: list[str] = [archdsl.__version__, sys.version, importlib.util.MAGIC_NUMBER.hex()]
    for root in roots:
        stamps.append(root)
        _walk(root, stamps, skip=os.path.join(roots[0], "specs"))
    return hashlib.sha256("\0".join(stamps).encode("utf-8", "surrogatepass")).hexdigest()   # no name has a NUL


def _walk(folder: str, stamps: list[str], depth: int = 0, skip: str = "") -> None:
    """Append ``name/size/mtime`` of every file below ``folder`` (not caches, hidden files or the folder ``skip``;
    at most 16 folders deep, so a link that loops ends), and ``name/`` of each subfolder before its files and
    ``..`` after them (no file name holds a slash: each stamp reads one way), names sorted, so equal trees give
    equal stamps."""
    if depth > 16:
        stamps.append("...")
        return
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=_NAME)
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if name == "__pycache__" or name.startswith("."):
            continue
        try:
            if entry.is_dir():
                if entry.path == skip:
                    continue
                stamps.append(f"{name}/")
                _walk(entry.path, stamps, depth + 1, skip)
                stamps.append("..")
            else:
                st = entry.stat()
                stamps.append(f"{name}/{st.st_size}/{st.st_mtime_ns}")
        except OSError:
            continue


_NAME = operator.attrgetter("name")


def torch_version() -> str:
    """torch's version: part of the key of every entry of generated code (imports torch; the zoo index's key,
    which ``archdsl check`` reads, leaves it out)."""
    import torch

    return str(torch.__version__)


def key_of(*parts: Any) -> str:
    """The key of an entry: SHA-256 of ``parts`` (JSON values) and :func:`fingerprint`."""
    text = json.dumps([fingerprint(), *parts], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def text_digest(text: str) -> str:
    """SHA-256 of a spec's text (the depfile's record of an imported file)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def file_digest(path: str) -> str | None:
    """SHA-256 of the text of spec file ``path`` as the loader reads it (UTF-8, byte order mark dropped); None
    when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return text_digest(f.read().removeprefix("\ufeff"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


class Entry:
    """One cache entry: ``meta`` (a JSON object), the generated ``source``, its ``code`` object (compiled with the
    file name ``filename``) and a ``text`` payload (a graph's JSON, or ""), stored compressed (``packed``: zlib of
    its UTF-8) and decompressed on first use of ``text``."""

    __slots__ = ("_text", "code", "filename", "key", "meta", "packed", "source")

    def __init__(self, key: str, meta: dict[str, Any], source: str, filename: str,
                 code: types.CodeType | None = None, text: str = "", packed: bytes | None = None) -> None:
        self.key, self.meta, self.source, self.filename, self.code = key, meta, source, filename, code
        self._text: str | None = None if packed is not None else text
        self.packed = packed if packed is not None else zlib.compress(text.encode("utf-8", "surrogatepass"), 1)

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = unpack(self.packed)
        return self._text


def unpack(packed: bytes) -> str:
    """The text of an entry's ``packed`` payload."""
    return zlib.decompress(packed).decode("utf-8", "surrogatepass")


def _path(folder: str | Path, key: str) -> str:
    return os.path.join(folder, SUBDIR, f"{key}{SUFFIX}")


def load(key: str) -> Entry | None:
    """The entry stored under ``key``, or None (no cache, no entry, or one that is not whole and ours)."""
    folder = _folder()
    if folder is None or len(key) != 64:
        return None
    path = _path(folder, key)
    try:
        if not _private(os.lstat(os.path.dirname(path))):
            return None
        with open(path, "rb") as f:
            if not _private(os.fstat(f.fileno())):
                return None
            data = f.read(MAX_ENTRY_BYTES + 1)
    except (OSError, ValueError):
        return None
    entry = _decode(data, key)
    if entry is not None:
        try:
            os.utime(path)          # recently used: eviction takes the oldest first
        except OSError:
            pass
    return entry


def _private(st: os.stat_result) -> bool:
    """Whether a cache folder or entry is this user's alone: owned by us, writable by nobody else (an entry holds
    code that runs; like ssh's StrictModes, a cache another account could write is not used)."""
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022 and (stat.S_ISDIR(st.st_mode)
                                                                     or stat.S_ISREG(st.st_mode))


def _decode(data: bytes, key: str) -> Entry | None:
    """An entry from its bytes, when it is whole, of this format and under this key; None otherwise."""
    if len(data) > MAX_ENTRY_BYTES or not data.startswith(FORMAT):
        return None
    end = data.find(b"\n", len(FORMAT))
    if end < 0:
        return None
    try:
        header = json.loads(data[len(FORMAT):end])
        if not isinstance(header, dict) or header.get("key") != key:
            return None
        sizes = header["sizes"]
        payload = memoryview(data)[end + 1:]
        if (not isinstance(sizes, list) or len(sizes) != 3 or not all(isinstance(n, int) and n >= 0 for n in sizes)
                or sum(sizes) != len(payload) or hashlib.sha256(payload).hexdigest() != header["sha256"]):
            return None
        a, b = sizes[0], sizes[0] + sizes[1]
        source = bytes(payload[:a]).decode("utf-8")
        code = marshal.loads(payload[a:b]) if sizes[1] else None
        packed = bytes(payload[b:])
        meta, filename = header["meta"], header["filename"]
        if not isinstance(meta, dict) or not isinstance(filename, str):
            return None
        if code is not None and not (isinstance(code, types.CodeType) and code.co_filename == filename):
            return None
    except (ValueError, KeyError, TypeError, EOFError, UnicodeDecodeError, RecursionError):
        return None
    return Entry(key, meta, source, filename, code, packed=packed)


def store(entry: Entry) -> bool:
    """Write ``entry`` atomically (silently nothing when there is no cache or it cannot be written); True when
    written. Keeps the cache within its bounds."""
    folder = cache_dir()
    if folder is None:
        return False
    try:
        code = marshal.dumps(entry.code) if entry.code is not None else b""
        parts = [entry.source.encode("utf-8"), code, entry.packed]
    except (ValueError, UnicodeEncodeError):
        return False
    payload = b"".join(parts)
    header = {"key": entry.key, "filename": entry.filename, "meta": entry.meta, "sizes": [len(p) for p in parts],
              "sha256": hashlib.sha256(payload).hexdigest()}
    try:
        head = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode()
    except (TypeError, ValueError):
        return False
    data = FORMAT + head + b"\n" + payload
    if len(data) > MAX_ENTRY_BYTES:
        return False
    target = Path(_path(folder, entry.key))
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(os.lstat(target.parent)):
            return False
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=SUFFIX)     # mode 0600
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False
    _evict(target.parent)
    return True


def _evict(folder: Path, max_entries: int | None = None, max_bytes: int | None = None) -> None:
    """Remove the least recently used entries beyond the bounds, and temporary files of killed writers."""
    max_entries = MAX_ENTRIES if max_entries is None else max_entries
    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    now = time.time()
    found: list[tuple[float, int, str]] = []
    try:
        with os.scandir(folder) as it:
            for e in it:
                try:
                    st = e.stat()
                except OSError:
                    continue
                if e.name.startswith(".tmp-"):
                    if now - st.st_mtime > _STALE_TMP_SECONDS:
                        _unlink(e.path)
                elif e.name.endswith(SUFFIX):
                    found.append((st.st_mtime, st.st_size, e.path))
    except OSError:
        return
    total = sum(size for _, size, _ in found)
    if len(found) <= max_entries and total <= max_bytes:
        return
    found.sort()
    while found and (len(found) > max_entries or total > max_bytes):
        _, size, path = found.pop(0)
        _unlink(path)
        total -= size


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def info() -> dict[str, Any]:
    """Where the cache is, whether it is on, and how many entries and bytes it holds."""
    folder = cache_dir()
    entries = size = 0
    if folder is not None:
        try:
            with os.scandir(folder / SUBDIR) as it:
                for e in it:
                    if e.name.endswith(SUFFIX) and not e.name.startswith("."):
                        try:
                            size += e.stat().st_size
                            entries += 1
                        except OSError:
                            continue
        except OSError:
            pass
    return {"enabled": folder is not None, "folder": str(folder) if folder is not None else None,
            "entries": entries, "bytes": size, "max_entries": MAX_ENTRIES, "max_bytes": MAX_BYTES}


def clear() -> int:
    """Remove every entry (and temporary file) of the cache; the number of entries removed."""
    folder = cache_dir()
    if folder is None:
        return 0
    removed = 0
    try:
        with os.scandir(folder / SUBDIR) as it:
            names = [(e.name, e.path) for e in it if e.is_file(follow_symlinks=False)]
    except OSError:
        return 0
    for name, path in names:
        if name.endswith(SUFFIX):
            try:
                os.unlink(path)
                removed += not name.startswith(".")
            except OSError:
                continue
    return removed
