"""The compile cache (archdsl.compilecache): hits give the module an uncached build gives, anything stale misses.

Every test runs with a cache folder of its own (tests/conftest.py sets ARCHDSL_CACHE_DIR per test).
"""

from __future__ import annotations

import copy
import importlib
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import archdsl
from archdsl import api, compilecache
from archdsl.backends.torch.build import GraphThunk
from archdsl.testing.equivalence import inputs_for

SPEC = """\
model Tiny(width: int = 4) {
  in image: [N, 3, H, W]
  stem = seq[Conv2d(width, 3, padding=1), BatchNorm2d()]
  fc = Linear(2)
  out image |> stem |> relu |> AdaptiveAvgPool2d(1) |> flatten |> fc
}
"""


def entries() -> list[Path]:
    folder = compilecache.cache_dir()
    assert folder is not None
    return sorted((folder / compilecache.SUBDIR).glob(f"*{compilecache.SUFFIX}"))


def no_compile(monkeypatch) -> None:
    """Make any compilation fail: what builds now must come from the cache."""
    def refuse(*args, **kwargs):
        raise AssertionError("compiled although the cache holds the result")

    monkeypatch.setattr(api, "_build_and_store", refuse)


def assert_same(a: torch.nn.Module, b: torch.nn.Module, sizes: dict[str, int] | None = None) -> None:
    """Same class, same state_dict keys and values (bit for bit), same mode, same source, same forward."""
    assert type(a) is type(b)
    assert a.archdsl_source == b.archdsl_source
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k
    assert a.training == b.training
    if sizes is not None:
        graph = a.archdsl_graph
        inputs = inputs_for(graph, sizes, torch.float32, seed=0)
        a.eval(), b.eval()
        with torch.no_grad():
            ya, yb = a(*inputs), b(*inputs)
        for x, y in zip(ya if isinstance(ya, tuple) else (ya,), yb if isinstance(yb, tuple) else (yb,), strict=True):
            assert torch.equal(x, y)


@pytest.mark.parametrize(("name", "sizes"), [("mobilenet_v3_small", {"N": 1, "H": 64, "W": 64}),
                                             ("levit_128", {"B": 1}),
                                             ("sesr_m5_x2", {"N": 1, "H": 12, "W": 12}),
                                             ("dcgan_generator", {"N": 2})])
def test_cached_build_equals_uncached(name: str, sizes: dict[str, int], monkeypatch) -> None:
    monkeypatch.setenv("ARCHDSL_NO_CACHE", "1")
    plain = archdsl.zoo.build(name, seed=3)
    assert entries_or_none() is None
    monkeypatch.delenv("ARCHDSL_NO_CACHE")
    filling = archdsl.zoo.build(name, seed=3)
    assert len([p for p in entries() if "deps" in read_entry(p).meta]) == 2      # the spec file's, the zoo build's
    no_compile(monkeypatch)
    hit = archdsl.zoo.build(name, seed=3)
    assert isinstance(hit.__dict__["archdsl_graph"], GraphThunk)      # the graph is made on first use only
    assert_same(plain, filling)
    assert_same(plain, hit, sizes)
    assert hit.archdsl_graph == plain.archdsl_graph
    assert hit.archdsl_graph is hit.archdsl_graph
    other = archdsl.zoo.build(name, seed=4)          # the seed is not part of the key: a hit, other weights
    assert not all(torch.equal(x, y) for x, y in zip(hit.state_dict().values(), other.state_dict().values(),
                                                     strict=True))


def entries_or_none() -> list[Path] | None:
    return entries() if compilecache.cache_dir() is not None else None


def test_hit_in_a_fresh_process_compiles_nothing(tmp_path: Path) -> None:
    """A second process builds from the cache without importing the parser, elaborator, verifier or generator,
    and makes the same weights."""
    script = ("import sys, torch, archdsl\nm = archdsl.zoo.build('shufflenet_v2_x1_0')\n"
              "print(sum(float(t.double().sum()) for t in m.state_dict().values()))\n"
              "print(sorted(n for n in ('archdsl.elaborate', 'archdsl.syntax.parser', 'archdsl.verify', "
              "'archdsl.backends.torch.codegen', 'pydantic') if n in sys.modules))\n")
    env = {**os.environ, "ARCHDSL_CACHE_DIR": str(tmp_path / "cache")}
    first = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    second = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert first.stdout.splitlines()[0] == second.stdout.splitlines()[0]
    assert "archdsl.elaborate" in first.stdout.splitlines()[1]
    assert second.stdout.splitlines()[1] == "[]", second.stdout


def test_stale_on_spec_edit_and_on_params(tmp_path: Path, monkeypatch) -> None:
    spec = tmp_path / "tiny.arch"
    spec.write_text(SPEC)
    assert archdsl.build(spec).stem[0].out_channels == 4
    assert archdsl.build(spec, width=6).stem[0].out_channels == 6       # parameters are part of the key
    assert archdsl.build(str(spec), width=6).stem[0].out_channels == 6
    spec.write_text(SPEC.replace("width: int = 4", "width: int = 5"))
    assert archdsl.build(spec).stem[0].out_channels == 5                # edited: compiled again
    assert archdsl.build(spec, check_inputs=True).stem[0].out_channels == 5
    assert hasattr(archdsl.build(spec, check_inputs=True), "_input_spec")
    assert not hasattr(archdsl.build(spec), "_input_spec")
    assert archdsl.build(spec, width=6).stem[0].out_channels == 6        # a new text: compiled again
    no_compile(monkeypatch)
    assert archdsl.build(spec, width=6).stem[0].out_channels == 6        # unchanged: from the cache
    assert archdsl.build(spec).stem[0].out_channels == 5


def test_stale_on_imported_file_edit(tmp_path: Path) -> None:
    (tmp_path / "parts.arch").write_text("block Stem(c: int) {\n  in x: [N, C, H, W]\n"
                                         "  conv = Conv2d(c, 3, padding=1)\n  out x |> conv\n}\n")
    spec = tmp_path / "main.arch"
    spec.write_text('import "parts.arch"\nmodel M() {\n  in image: [N, 3, H, W]\n'
                    "  out image |> Stem(4) |> relu\n}\n")
    first = archdsl.build(spec)
    (tmp_path / "parts.arch").write_text("block Stem(c: int) {\n  in x: [N, C, H, W]\n"
                                         "  conv = Conv2d(c, 1)\n  out x |> conv\n}\n")
    second = archdsl.build(spec)
    convs = [[m for m in mod.modules() if isinstance(m, torch.nn.Conv2d)][0] for mod in (first, second)]
    assert convs[0].kernel_size == (3, 3) and convs[1].kernel_size == (1, 1)


def test_std_imports_are_recorded() -> None:
    """A spec's imports of the shipped library are in its entry's dependency list (re-checked on each hit)."""
    archdsl.zoo.build("mobilenet_v3_small")
    built = [e for e in map(read_entry, entries()) if "deps" in e.meta]
    assert len(built) == 2 and built[0].meta == built[1].meta             # the spec file's, the zoo build's
    files = [Path(path).parent.name + "/" + Path(path).name for path, _ in built[0].meta["deps"]]
    assert "specs/mobilenet.arch" in files and "std/blocks.arch" in files, files
    assert all(Path(path).is_absolute() for path, _ in built[0].meta["deps"])


def read_entry(path: Path) -> compilecache.Entry:
    entry = compilecache._decode(path.read_bytes(), path.name.removesuffix(compilecache.SUFFIX))
    assert entry is not None
    return entry


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "foreign key", "flipped byte", "other format"])
def test_damaged_entry_is_ignored_and_rewritten(damage: str, tmp_path: Path, monkeypatch) -> None:
    spec = tmp_path / "tiny.arch"
    spec.write_text(SPEC)
    good = archdsl.build(spec)
    [path] = [p for p in entries() if "deps" in read_entry(p).meta]
    data = path.read_bytes()
    damaged = {"truncate": data[: len(data) // 2], "garbage": os.urandom(300), "empty": b"",
               "foreign key": data.replace(path.stem.encode(), b"0" * 64, 1),
               "flipped byte": data[:-10] + bytes([data[-10] ^ 1]) + data[-9:],
               "other format": b"archdsl-compile-cache 0\n" + data[len(compilecache.FORMAT):]}[damage]
    path.write_bytes(damaged)
    assert compilecache._decode(damaged, path.stem) is None
    again = archdsl.build(spec)
    assert_same(good, again)
    assert read_entry(path).source == good.archdsl_source          # rewritten whole


def test_unwritable_or_odd_cache_folder_means_no_cache(tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    spec = tmp_path / "tiny.arch"
    spec.write_text(SPEC)
    for folder in (blocker / "cache", blocker, tmp_path / ("x" * 5000)):     # under a file; a file; too long
        monkeypatch.setenv("ARCHDSL_CACHE_DIR", str(folder))
        assert archdsl.build(spec).stem[0].out_channels == 4
        assert compilecache.load("0" * 64) is None
    assert blocker.read_text() == "not a folder"


def test_entries_others_could_write_are_not_used(tmp_path: Path, monkeypatch) -> None:
    """An entry holds code that runs: one in a folder, or a file, that other accounts may write is ignored (and
    nothing is written into such a folder)."""
    spec = tmp_path / "tiny.arch"
    spec.write_text(SPEC)
    archdsl.build(spec)
    [path] = [p for p in entries() if "deps" in read_entry(p).meta]
    key = path.stem
    assert compilecache.load(key) is not None
    path.chmod(0o666)
    assert compilecache.load(key) is None
    path.chmod(0o600)
    path.parent.chmod(0o777)
    try:
        assert compilecache.load(key) is None
        assert not compilecache.store(read_entry(path))
    finally:
        path.parent.chmod(0o700)
    assert compilecache.load(key) is not None


def test_turned_off_by_environment(tmp_path: Path, monkeypatch) -> None:
    spec = tmp_path / "tiny.arch"
    spec.write_text(SPEC)
    monkeypatch.setenv("ARCHDSL_CACHE_DIR", str(tmp_path / "c"))
    for name, value in (("ARCHDSL_NO_CACHE", "1"), ("ARCHDSL_CACHE_DIR", "")):
        with monkeypatch.context() as m:
            m.setenv(name, value)
            assert compilecache.cache_dir() is None
            archdsl.build(spec)
    assert not (tmp_path / "c").exists()
    monkeypatch.setenv("ARCHDSL_NO_CACHE", "0")
    assert compilecache.cache_dir() == tmp_path / "c"


def test_location(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("ARCHDSL_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compilecache.cache_dir() == tmp_path / "xdg" / "archdsl"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compilecache.cache_dir() == tmp_path / "home" / ".cache" / "archdsl"


def test_concurrent_writers_and_readers() -> None:
    """Writers of one key never leave a partial entry a reader could see; every read is whole or absent."""
    key = compilecache.key_of("test", "concurrent")
    source = "x = 1\n" * 20000
    filename, code = "<t>", compile(source, "<t>", "exec")
    seen: list[object] = []
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(20):
                assert compilecache.store(compilecache.Entry(key, {"n": 1}, source, filename, code, "t" * 5000))
        except BaseException as exc:       # noqa: BLE001 - reported below
            errors.append(exc)

    def read() -> None:
        for _ in range(60):
            entry = compilecache.load(key)
            seen.append(None if entry is None else (entry.source == source and entry.text == "t" * 5000))

    threads = [threading.Thread(target=write) for _ in range(4)] + [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and all(s in (None, True) for s in seen)
    assert len(entries()) == 1 and not [p for p in entries()[0].parent.iterdir() if p.name.startswith(".tmp-")]


def test_concurrent_processes_build_one_spec(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.arch"
    spec.write_text(SPEC)
    script = f"import archdsl\nprint(archdsl.build({str(spec)!r}).stem[0].out_channels)\n"
    env = {**os.environ, "ARCHDSL_CACHE_DIR": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate()[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0] and outs == ["4\n"] * 3
    folder = tmp_path / "cache" / compilecache.SUBDIR
    assert all(compilecache._decode(p.read_bytes(), p.stem) is not None for p in folder.iterdir())


def test_bounded_size(monkeypatch) -> None:
    monkeypatch.setattr(compilecache, "MAX_ENTRIES", 3)
    keys = [compilecache.key_of("bounded", i) for i in range(5)]
    for i, key in enumerate(keys):
        compilecache.store(compilecache.Entry(key, {}, "", ""))
        os.utime(entries()[0].parent / f"{key}{compilecache.SUFFIX}", (1000 + i, 1000 + i))
    assert [p.stem for p in entries()] == sorted(keys[2:])                # the oldest went
    monkeypatch.setattr(compilecache, "MAX_BYTES", 1)
    compilecache.store(compilecache.Entry(compilecache.key_of("bounded", "big"), {}, "y" * 100, ""))
    assert len(entries()) <= 1


def test_archdsl_code_is_part_of_the_key(tmp_path: Path) -> None:
    """The fingerprint follows every file of a folder it walks: an edited file gives other stamps."""
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.py").write_text("y = 1\n")
    (tmp_path / "__pycache__").mkdir()

    def stamps() -> list:
        out: list = []
        compilecache._walk(str(tmp_path), out)
        return out

    before = stamps()
    (tmp_path / "__pycache__" / "a.pyc").write_bytes(b"ignored")
    assert stamps() == before
    (tmp_path / "sub" / "b.py").write_text("y = 22\n")
    assert stamps() != before
    assert len(compilecache.fingerprint()) == 64 and compilecache.key_of(1) != compilecache.key_of(2)


def test_import_path_env_name_is_the_loaders() -> None:
    from archdsl.elaborate.loader import IMPORT_PATH_ENV

    assert api.IMPORT_PATH_ENV == IMPORT_PATH_ENV


def test_lazy_graph_survives_copy_and_pickle(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.arch"
    spec.write_text(SPEC)
    archdsl.build(spec)
    hit = archdsl.build(spec)
    assert isinstance(hit.__dict__["archdsl_graph"], GraphThunk)
    clone = copy.deepcopy(hit)
    assert clone.archdsl_graph == archdsl.compile(spec)
    thunk = pickle.loads(pickle.dumps(hit.__dict__["archdsl_graph"]))
    assert thunk() == archdsl.compile(spec)
    del clone.archdsl_graph
    assert getattr(clone, "archdsl_graph", None) is None
    assert archdsl.build(spec, collapse_train=True).graph == archdsl.compile(spec)


def test_spec_text_and_graphs_bypass_the_cache(tmp_path: Path) -> None:
    assert archdsl.build(SPEC).stem[0].out_channels == 4
    assert archdsl.build(archdsl.compile(SPEC, width=3)).stem[0].out_channels == 3
    assert entries_or_none() in (None, [])


def test_a_spec_that_warns_warns_every_time(tmp_path: Path) -> None:
    spec = tmp_path / "dead.arch"
    spec.write_text(SPEC.replace("  fc = Linear(2)\n", "  fc = Linear(2)\n  spare = Linear(5)\n"))
    for _ in range(2):
        with pytest.warns(archdsl.errors.ArchWarning, match="'spare' is defined but never used"):
            assert archdsl.build(spec).fc.out_features == 2
    assert entries_or_none() in (None, [])


def test_zoo_index_is_kept_and_follows_edits(tmp_path: Path, monkeypatch) -> None:
    from archdsl import zoo

    zoo._index_of.cache_clear()
    shipped = zoo.names()
    zoo._index_of.cache_clear()
    real_scan = zoo._scan_index

    def refuse(files):
        raise AssertionError("scanned although the cache holds the index")

    monkeypatch.setattr(zoo, "_scan_index", refuse)
    assert zoo.names() == shipped                       # another process: read from the cache
    monkeypatch.setattr(zoo, "_scan_index", real_scan)
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "a.arch").write_text(SPEC)
    monkeypatch.setattr(zoo, "spec_dir", lambda: folder)
    assert zoo.names() == ["Tiny"]
    (folder / "a.arch").write_text(SPEC + SPEC.replace("Tiny", "Other"))
    zoo._index_of.cache_clear()
    assert zoo.names() == ["Other", "Tiny"]
    zoo._index_of.cache_clear()


def test_fingerprint_leaves_out_the_shipped_specs_but_not_code(tmp_path: Path, monkeypatch) -> None:
    """Spec files are data each entry checks itself (its key has the spec's digest, its deps their digests, the zoo
    index its files' stamps): the fingerprint walks every folder of code but the specs folder."""
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "m.arch").write_text("model M() {}\n")

    def stamps() -> list:
        out: list = []
        compilecache._walk(str(tmp_path), out, skip=str(tmp_path / "specs"))
        return out

    before = stamps()
    (tmp_path / "specs" / "m.arch").write_text("model M(width: int = 2) {}\n")
    (tmp_path / "specs" / "n.arch").write_text("")
    assert stamps() == before
    (tmp_path / "a.py").write_text("x = 22\n")
    assert stamps() != before
    walked: list[tuple[str, str]] = []
    monkeypatch.setattr(compilecache, "_walk", lambda root, out, skip="": walked.append((root, skip)))
    compilecache.fingerprint.__wrapped__()
    package = os.path.dirname(archdsl.__file__)
    assert walked[0] == (package, os.path.join(package, "specs"))
    roots = [root for root, _ in walked]
    for name in ("archdsl.backends", "archdsl.grammar"):         # walked, as folders of their own or below the package
        for folder in importlib.import_module(name).__path__:
            assert any(folder == r or folder.startswith(r + os.sep) for r in roots), folder


def test_a_hit_reads_the_spec_once_and_still_checks_every_dependency(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "parts.arch").write_text("block Stem(c: int) {\n  in x: [N, C, H, W]\n"
                                         "  conv = Conv2d(c, 3, padding=1)\n  out x |> conv\n}\n")
    spec = tmp_path / "main.arch"
    spec.write_text('import "parts.arch"\nmodel M() {\n  in image: [N, 3, H, W]\n'
                    "  out image |> Stem(4) |> relu\n}\n")
    archdsl.build(spec)
    read: list[str] = []
    real_digest = compilecache.file_digest
    monkeypatch.setattr(compilecache, "file_digest", lambda path: read.append(os.path.realpath(path)) or
                        real_digest(path))
    no_compile(monkeypatch)
    archdsl.build(spec)
    assert sorted(read) == sorted(os.path.realpath(tmp_path / name) for name in ("main.arch", "parts.arch"))
    deps = [[os.path.realpath(spec), "0" * 64]]
    assert not api._fresh(deps, {})
    assert api._fresh(deps, {os.path.realpath(spec): "0" * 64})      # a digest just taken is not taken again


def test_zoo_index_holds_paths_as_text() -> None:
    from archdsl import zoo

    index = zoo._index()
    assert index and all(isinstance(v, str) for v in index.values())
    path = zoo.spec_path("resnet50")
    assert isinstance(path, Path) and path.name == "resnet.arch" and zoo.spec_path("no_such_model") is None


def test_zoo_build_hits_without_the_index_and_follows_the_zoo_files(tmp_path: Path, monkeypatch) -> None:
    """zoo.build stores its result under a key of the name and the zoo files' stamps too: a later build reads
    neither the index nor the spec's own entry; an edited, added or removed zoo file is another key."""
    from archdsl import zoo

    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "a.arch").write_text(SPEC)
    monkeypatch.setattr(zoo, "spec_dir", lambda: folder)
    first = zoo.build("Tiny")
    assert len(entries()) == 3                      # the index, the spec file's entry, the zoo build's
    real_index, real_load = zoo._index_of, compilecache.load
    monkeypatch.setattr(zoo, "_index_of", lambda files: pytest.fail("read the zoo index on a hit"))
    loaded: list[str] = []
    monkeypatch.setattr(compilecache, "load", lambda key: loaded.append(key) or real_load(key))
    with monkeypatch.context() as m:
        no_compile(m)
        assert_same(first, zoo.build("Tiny"))
    assert len(loaded) == 1
    monkeypatch.setattr(zoo, "_index_of", real_index)
    (folder / "a.arch").write_text(SPEC.replace("width: int = 4", "width: int = 5"))
    assert zoo.build("Tiny").stem[0].out_channels == 5           # edited: compiled again
    (folder / "b.arch").write_text(SPEC.replace("Tiny", "Other"))
    with monkeypatch.context() as m:                             # another zoo file: the spec's own entry hits
        no_compile(m)
        assert zoo.build("Tiny").stem[0].out_channels == 5
    with pytest.raises(archdsl.errors.UsageError, match="no model named 'Tinyy'"):
        zoo.build("Tinyy")
    with pytest.raises(archdsl.errors.UsageError, match="seed must be None or an int"):
        zoo.build("Tiny", seed=1.5)
