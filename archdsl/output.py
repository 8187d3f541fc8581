"""Safe output writing: one output folder or one output file, never losing or clobbering what is there.

Every command that writes files goes through this module (``build -o``, ``simplify -o``, ``fmt -o``, ``viz -o``).

Output folders (:func:`write_output_dir`), the way git and rsync write:

1. The files are written into a private temporary folder beside OUTDIR (``.OUTDIR.archdsl-<random>.tmp``),
   each one flushed to disk. The writer holds an advisory lock (``flock``) on that folder while it lives.
2. The folder is committed with one atomic ``renameat2`` (Linux): ``RENAME_NOREPLACE`` when OUTDIR must not
   exist (two concurrent builds: exactly one wins, the other gets "already exists"), ``RENAME_EXCHANGE``
   with ``force`` (OUTDIR is never missing, not even for an instant). The commit runs under a lock on the
   parent folder, so checking and swapping cannot interleave with another archdsl process.
3. With ``force``, the folder swapped out is checked *after* the swap: it must hold only regular files whose
   names archdsl writes there. Anything else (a sub-folder named ``model.py``, a symlink, a notes file)
   is swapped straight back and the call fails; nothing a user wrote is ever deleted.
4. A process killed at any moment leaves OUTDIR either as it was or fully replaced, plus at most one hidden
   ``.OUTDIR.archdsl-*`` folder. The next write to the same OUTDIR removes such folders whose lock is no
   longer held (their writer is dead) when they hold only regular files.

Where ``renameat2`` is missing (not Linux, or a file system without it) the commit falls back to a documented
two-step: rename OUTDIR to ``.OUTDIR.archdsl-<random>.old``, rename the new folder into place, delete the old one.
A kill between the two renames leaves the ``.old`` folder, which the next write moves back before doing
anything else.

Output files (:func:`write_file`): a regular file is replaced atomically, keeping its permission bits (and
owner, when allowed); a symlink is followed and its target replaced; a FIFO, a character device or another
special file is written into, never replaced; a folder is refused. ``exclusive=True`` creates the file only
if it does not exist (of two concurrent writers exactly one wins).

Groups of sibling files (:func:`write_files`, e.g. ``model.onnx`` with its external ``model.onnx.data``):
written and flushed in a private temporary folder, then each renamed into place; without ``force`` every
name is claimed exclusively (all or none), with ``force`` only regular files are replaced.

Every ``OSError`` becomes a :class:`~archdsl.errors.UsageError` that names the path.

Typical use by a command::

    from archdsl.output import write_output_dir
    paths = write_output_dir(args.output, {"graph.json": text, "weights.safetensors": lambda p: save(p)},
                             force=args.force, known={"report.json"})
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Literal

from archdsl.errors import Diagnostic, UsageError

__all__ = ["write_output_dir", "write_file", "write_files", "output_error", "Content"]

Content = bytes | str | Callable[[Path], None]   # bytes, UTF-8 text, or a function that writes the given path
_MARK = ".archdsl-"                             # temporary folders are named f".{OUTDIR name}{_MARK}<random>.tmp|.old"
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_AT_FDCWD = -100


def output_error(path: str | os.PathLike, exc: OSError, doing: str = "write") -> UsageError:
    """A one-line UsageError for an OSError met while writing ``path`` (ENAMETOOLONG, ENOSPC, EACCES...)."""
    reason = exc.strerror or str(exc)
    hints: dict[int | None, str] = {errno.ENAMETOOLONG: "use a shorter name", errno.ENOSPC: "free some space or write elsewhere",
            errno.ENOTDIR: "a component of the path is a file, not a folder",
            errno.EROFS: "that file system is read-only", errno.EACCES: "check the permissions"}
    hint = hints.get(exc.errno, f"check that the path is right and that you may {doing} there")
    return UsageError(Diagnostic(f"cannot {doing} {os.fspath(path)!s}: {reason}", hint=hint))


def write_output_dir(outdir: str | os.PathLike, files: Mapping[str, Content], force: bool = False,
                     known: Iterable[str] = ()) -> dict[str, Path]:
    """Create (or with ``force`` atomically replace) the folder ``outdir`` holding exactly ``files``.

    ``files`` maps plain file names to their content: bytes, text (written as UTF-8), or a callable that
    writes the path it is given (``lambda p: save_file(tensors, p)``). ``known`` names further files an
    earlier output of the same kind may hold; with ``force``, an existing ``outdir`` is replaced only when
    it holds nothing but regular files named in ``files`` or ``known``. Returns ``{name: final path}``.
    Raises UsageError (exit status 2) for every refusal and file-system error; see the module docstring.
    """
    out = Path(os.path.abspath(os.fspath(outdir)))
    allowed = frozenset(files) | frozenset(known)
    for name in files:
        if not name or name in (".", "..") or "/" in name or "\0" in name or name.startswith("."):
            raise ValueError(f"output file names must be plain visible names, got {name!r}")
    if len(out.name.encode()) > 255 - 24:
        raise output_error(out, OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG)), "create")
    _make_parent(out.parent)
    with _locked(out.parent):                   # another writer's stale-folder cleanup must not see our
        _recover(out)                           # folder between its creation and its lock: both happen here
        _preflight(out, force, allowed)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}{_MARK}", suffix=".tmp", dir=out.parent))
        except OSError as exc:
            raise output_error(out, exc, "create") from None
        fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX)          # marks the folder live; released by the kernel if we die
    try:
        _fill(tmp, out, files)
        with _locked(out.parent):
            _commit(tmp, out, force, allowed)
    except BaseException:
        _remove_ours(tmp)
        raise
    finally:
        os.close(fd)
    return {name: out / name for name in files}


def _make_parent(parent: Path) -> None:
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(Diagnostic(f"cannot create {parent}: a file of that name is in the way",
                                    hint="a component of the path is a file, not a folder")) from None
    except OSError as exc:
        raise output_error(parent, exc, "create") from None


def _preflight(out: Path, force: bool, allowed: frozenset[str]) -> None:
    """Refuse early (before any work) when ``out`` exists and may not be replaced."""
    if not os.path.lexists(out):
        return
    if not force:
        raise UsageError(Diagnostic(f"{out} already exists", hint="pass --force (force=True) to replace it"))
    problem = _foreign(out, allowed)
    if problem:
        raise UsageError(Diagnostic(f"refusing to replace {out}: {problem}", hint="choose another output folder"))


def _foreign(folder: Path, allowed: frozenset[str]) -> str | None:
    """Why ``folder`` is not an archdsl output of this kind (None when it is one)."""
    if folder.is_symlink() or not folder.is_dir():
        return "it exists and is not a folder"
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        return f"it cannot be listed ({exc.strerror})"
    odd = sorted(e.name for e in entries if e.name not in allowed or not e.is_file(follow_symlinks=False))
    if odd:
        return f"it holds files archdsl did not write ({', '.join(odd[:3])}{', ...' if len(odd) > 3 else ''})"
    return None


def _fill(tmp: Path, out: Path, files: Mapping[str, Content]) -> None:
    """Write every file into ``tmp`` and flush it (and the folder) to disk."""
    for name, content in files.items():
        path = tmp / name
        try:
            if callable(content):
                content(path)
            else:
                data = content.encode("utf-8") if isinstance(content, str) else content
                with open(path, "xb") as f:
                    f.write(data)
            _fsync(path)
        except OSError as exc:
            raise output_error(out / name, exc) from None
    _fsync(tmp)
    os.chmod(tmp, 0o777 & ~_umask())   # mkdtemp makes 0700; a build folder gets the usual mode


def _commit(tmp: Path, out: Path, force: bool, allowed: frozenset[str]) -> None:
    """Move ``tmp`` to ``out`` atomically (see the module docstring); parent lock held."""
    if not os.path.lexists(out) or not force:
        err = _rename2(tmp, out, _RENAME_NOREPLACE)
        if err == errno.EEXIST:
            if not force:
                raise UsageError(Diagnostic(f"{out} already exists (another process created it meanwhile)",
                                            hint="pass --force (force=True) to replace it"))
        elif err is None:
            _fsync(out.parent)
            return
        elif err not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            raise output_error(out, OSError(err, os.strerror(err)), "create")
        else:
            return _commit_two_step(tmp, out, force, allowed)
    problem = _foreign(out, allowed)
    if problem:
        raise UsageError(Diagnostic(f"refusing to replace {out}: {problem}", hint="choose another output folder"))
    with contextlib.suppress(OSError):
        os.chmod(tmp, stat.S_IMODE(os.lstat(out).st_mode))     # the replaced folder's permissions carry over
    err = _rename2(tmp, out, _RENAME_EXCHANGE)
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return _commit_two_step(tmp, out, force, allowed)
    if err is not None:
        raise output_error(out, OSError(err, os.strerror(err)), "replace")
    problem = _foreign(tmp, allowed)      # what was swapped out, checked again after the swap
    if problem:
        _rename2(tmp, out, _RENAME_EXCHANGE)
        raise UsageError(Diagnostic(f"refusing to replace {out}: {problem}", hint="choose another output folder"))
    _fsync(out.parent)
    _remove_ours(tmp)


def _commit_two_step(tmp: Path, out: Path, force: bool, allowed: frozenset[str]) -> None:
    """The fallback commit without renameat2: rename aside, rename in, delete (recovered by :func:`_recover`)."""
    if not os.path.lexists(out):
        try:
            os.mkdir(out)      # claims the name exclusively; an empty folder is then replaced by rename
        except FileExistsError:
            if not force:
                raise UsageError(Diagnostic(f"{out} already exists", hint="pass --force to replace it")) from None
        else:
            os.rename(tmp, out)
            return
    problem = _foreign(out, allowed)
    if problem:
        raise UsageError(Diagnostic(f"refusing to replace {out}: {problem}", hint="choose another output folder"))
    old = Path(str(tmp)[: -len(".tmp")] + ".old")
    os.rename(out, old)
    os.rename(tmp, out)
    _fsync(out.parent)
    _remove_ours(old)


def _recover(out: Path) -> None:
    """Undo a two-step commit cut short, and remove temporary folders whose writer has died."""
    prefix = f".{out.name}{_MARK}"
    try:
        entries = [e for e in os.scandir(out.parent) if e.name.startswith(prefix)
                   and e.name.endswith((".tmp", ".old")) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for e in sorted(entries, key=lambda e: not e.name.endswith(".old")):
        path = Path(e.path)
        with _try_lock(path) as free:
            if not free:
                continue        # its writer is alive
            if e.name.endswith(".old") and not os.path.lexists(out):
                with contextlib.suppress(OSError):
                    os.rename(path, out)
                continue
        _remove_ours(path)


def _remove_ours(folder: Path) -> None:
    """Delete a temporary folder of ours: its regular files, then itself; anything else is left in place."""
    try:
        for e in os.scandir(folder):
            if e.is_file(follow_symlinks=False):
                os.unlink(e.path)
        os.rmdir(folder)
    except OSError:
        pass


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive flock on ``folder`` itself (no lock file is left behind); best effort where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise output_error(folder, exc, "open") from None
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _try_lock(folder: Path) -> Iterator[bool]:
    """True when nobody holds ``folder``'s flock (the lock is held for the block)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


_libc: ctypes.CDLL | Literal[False] | None = None    # False: no renameat2 in this libc


def _rename2(src: Path, dst: Path, flags: int) -> int | None:
    """``renameat2(src, dst, flags)``; None on success, else the errno (ENOSYS where unavailable)."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        except (OSError, AttributeError):
            _libc = False
    if _libc is False or os.environ.get("ARCHDSL_NO_RENAMEAT2"):
        return errno.ENOSYS
    if _libc.renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return None
    return ctypes.get_errno()


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def write_file(path: str | os.PathLike, data: bytes | str, exclusive: bool = False) -> None:
    """Write ``data`` to the file ``path`` safely (see the module docstring); UsageError on any failure.

    With ``exclusive`` the file must not exist yet (like ``open(path, "x")``, but the complete file appears at
    once): of two concurrent writers exactly one succeeds; the other gets "already exists".
    """
    data = data.encode("utf-8") if isinstance(data, str) else data
    if exclusive:
        folder, name = os.path.split(os.path.abspath(os.fspath(path)))
        write_files(folder, {name: data}, force=False, display=os.fspath(path))
        return
    target = os.path.realpath(os.fspath(path))      # a symlink's target is what gets written
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise output_error(path, exc) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise UsageError(Diagnostic(f"cannot write {os.fspath(path)}: it is a folder", hint="name a file"))
    try:
        if st is not None and not stat.S_ISREG(st.st_mode):
            _write_into(target, data)           # a FIFO, terminal or device: write into it, never replace it
        else:
            _replace(target, data, st)
    except OSError as exc:
        raise output_error(path, exc) from None


def write_files(folder: str | os.PathLike, files: Mapping[str, Content], force: bool = False,
                display: str | None = None) -> dict[str, Path]:
    """Write several sibling files into ``folder`` (created if missing), e.g. ``model.onnx`` and its ``.data``.

    Every file is written and flushed in a private temporary folder inside ``folder`` first, so a failure or a
    kill never leaves a half-written file under a final name (temporary folders of dead writers are removed by
    the next call for the same first file name). Without ``force`` no target may exist: each is committed with
    an exclusive rename (``RENAME_NOREPLACE``, or ``link`` + ``unlink``), and if another process wins any of
    the names, the files this call already committed are removed again and it fails with "already exists".
    With ``force`` an existing target must be a regular file (never a folder, symlink, FIFO or device); it is
    replaced atomically, keeping its permission bits. ``display`` is the path messages name (default: the
    first file). Returns ``{name: final path}``.
    """
    out = Path(os.path.abspath(os.fspath(folder)))
    for name in files:
        if not name or name in (".", "..") or "/" in name or "\0" in name or name.startswith("."):
            raise ValueError(f"output file names must be plain visible names, got {name!r}")
    if not files:
        return {}
    first = next(iter(files))
    shown = display or os.fspath(out / first)
    if len(first.encode()) > 255 - 24:
        raise output_error(shown, OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG)), "create")
    _make_parent(out)
    if not out.is_dir():
        raise output_error(shown, OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)), "create")
    with _locked(out):                          # another writer's stale-folder cleanup must not see our
        _recover(out / first)                   # folder between its creation and its lock: both happen here
        _check_files(out, files, force)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{first}{_MARK}", suffix=".tmp", dir=out))
        except OSError as exc:
            raise output_error(shown, exc, "create") from None
        fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX)          # marks the folder live; released by the kernel if we die
    try:
        _fill(tmp, out, files)
        with _locked(out):
            _check_files(out, files, force)
            _commit_files(tmp, out, files, force)
    except BaseException:
        _remove_ours(tmp)
        raise
    finally:
        os.close(fd)
    _remove_ours(tmp)
    return {name: out / name for name in files}


def _check_files(out: Path, files: Mapping[str, Content], force: bool) -> None:
    for name in files:
        target = out / name
        if not os.path.lexists(target):
            continue
        if not force:
            raise UsageError(Diagnostic(f"{target} already exists", hint="pass --force (force=True) to replace it"))
        if not stat.S_ISREG(os.lstat(target).st_mode):
            raise UsageError(Diagnostic(f"refusing to replace {target}: it is not a regular file",
                                        hint="choose another output name"))


def _commit_files(tmp: Path, out: Path, files: Mapping[str, Content], force: bool) -> None:
    """Move each file from ``tmp`` into ``out`` (parent lock held); undo new files if a name was taken."""
    created: list[Path] = []
    for name in files:
        src, dst = tmp / name, out / name
        try:
            if force and os.path.lexists(dst):
                os.chmod(src, stat.S_IMODE(os.lstat(dst).st_mode))
                os.replace(src, dst)
                continue
            err = _rename2(src, dst, _RENAME_NOREPLACE)
            if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
                try:
                    os.link(src, dst)          # atomic and exclusive where renameat2 is missing
                    err = None
                except FileExistsError:
                    err = errno.EEXIST
            if err == errno.EEXIST:
                raise UsageError(Diagnostic(f"{dst} already exists (another process created it meanwhile)",
                                            hint="pass --force (force=True) to replace it"))
            if err is not None:
                raise OSError(err, os.strerror(err), str(dst))
            created.append(dst)
        except OSError as exc:
            _unlink_all(created)
            raise output_error(dst, exc) from None
        except UsageError:
            _unlink_all(created)
            raise
    _fsync(out)


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _write_into(target: str, data: bytes) -> None:
    fd = os.open(target, os.O_WRONLY)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _replace(target: str, data: bytes, st: os.stat_result | None) -> None:
    folder, name = os.path.split(target)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name[:200]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            if st is None:
                os.fchmod(f.fileno(), 0o666 & ~_umask())
            else:
                with contextlib.suppress(OSError):
                    os.fchown(f.fileno(), st.st_uid, st.st_gid)
                os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
