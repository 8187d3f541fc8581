"""Turn generated source into a live module, deterministically seeded."""

from __future__ import annotations

import functools
import hashlib
import linecache
import sys
import types
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:       # the code generator and the IR load only when a module is generated (not from the cache)
    from archdsl.ir.graph import Graph


def source_file(source: str) -> tuple[str, str]:
    """(module name, file name) under which generated ``source`` is imported (a digest of the source)."""
    digest = hashlib.sha1(source.encode()).hexdigest()[:16]
    return f"archdsl_generated_{digest}", f"<archdsl-generated {digest}>"


def compile_source(source: str) -> tuple[str, types.CodeType]:
    """(file name, code object) of generated ``source``, as :func:`load_source` compiles it (the code object it
    compiled last, when it was this source's)."""
    filename = source_file(source)[1]
    code = _COMPILED.pop(filename, None)
    return filename, code if code is not None else compile(source, filename, "exec")


_COMPILED: dict[str, types.CodeType] = {}      # {file name: code object} load_source compiled lately (at most 4)


def load_source(source: str, cls: str, code: types.CodeType | None = None) -> type[torch.nn.Module]:
    """Import generated module source under a unique module name and return its class.

    The source is archdsl's own output (from codegen), never text from a spec file: running it is how
    a generated module comes to exist, as if it had been written to disk and imported. ``code``: the source's
    code object compiled by :func:`compile_source` (from archdsl's compile cache), else it is compiled here.
    """
    name, filename = source_file(source)
    module = sys.modules.get(name)
    if module is None:
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        module = types.ModuleType(name)
        module.__file__ = filename
        if code is None or code.co_filename != filename:
            code = _COMPILED[filename] = compile(source, filename, "exec")
            while len(_COMPILED) > 4:
                try:
                    _COMPILED.pop(next(iter(_COMPILED)), None)
                except (StopIteration, RuntimeError):    # emptied or changed by another thread meanwhile
                    break
        exec(code, module.__dict__)  # noqa: S102 - our generated code (see docstring)
        for value in list(module.__dict__.values()):
            if isinstance(value, type) and issubclass(value, torch.nn.Module) and value.__module__ == name:
                value.archdsl_graph = _GraphSlot()      # type: ignore[attr-defined]
        sys.modules[name] = module
    return getattr(module, cls)


def build_module(graph: Graph, seed: int | None = 0, check_inputs: bool = False,
                 label: str = "a spec") -> torch.nn.Module:
    """An ``nn.Module`` for ``graph`` with PyTorch-default initialisation under ``seed`` (``label``: where the
    generated source says the graph came from)."""
    from archdsl.backends.torch.codegen import class_name, generate_source

    source = generate_source(graph, check_inputs=check_inputs, source=label)
    return instantiate(load_source(source, class_name(graph)), seed, graph, source)


def instantiate(cls: type[torch.nn.Module], seed: int | None, graph: Graph | GraphThunk, source: str,
                mode: str | None = None) -> torch.nn.Module:
    """``cls()`` with PyTorch-default initialisation under ``seed`` (the global RNG left as it was), carrying
    ``graph`` (or a thunk that makes it on first use; ``mode``: the graph's mode then) and ``source``."""
    if seed is None:
        module = cls()
    else:
        with torch.random.fork_rng(devices=[]):
            _seed(seed)
            module = cls()
    return _finish(module, graph, source, mode)


def _seed(seed: int) -> None:
    """``torch.manual_seed(seed)``; on a machine without an accelerator, the CPU generator's alone (the same
    numbers: modules are made on the CPU; torch.manual_seed's first call costs milliseconds queueing lazy seeds
    for CUDA and XPU)."""
    if torch.cuda.is_available() or torch.backends.mps.is_available() or torch.xpu.is_available():
        torch.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)


class GraphThunk:
    """A module's graph, made on first use: ``Graph.from_json`` of JSON text this archdsl verified before (from
    the compile cache; ``text``: the text, or bytes of it compressed by :mod:`archdsl.compilecache`). Every call
    returns the same Graph."""

    def __init__(self, text: str | bytes) -> None:
        self.text = text
        self.graph: Graph | None = None

    def __call__(self) -> Graph:
        if self.graph is None:
            from archdsl.compilecache import unpack
            from archdsl.ir.graph import Graph

            self.graph = Graph.from_json(self.text if isinstance(self.text, str) else unpack(self.text))
        return self.graph

    def __getstate__(self) -> dict[str, Any]:
        return {"text": self.text, "graph": None}


class _GraphSlot:
    """``module.archdsl_graph`` of a generated class: the Graph the module was built from, made on first use when
    the module came from the compile cache (a :class:`GraphThunk` in its ``__dict__``)."""

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        try:
            value = obj.__dict__["archdsl_graph"]
        except KeyError:
            raise AttributeError(f"'{type(obj).__name__}' object has no attribute 'archdsl_graph'") from None
        if isinstance(value, GraphThunk):
            value = obj.__dict__["archdsl_graph"] = value()
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__["archdsl_graph"] = value

    def __delete__(self, obj: Any) -> None:
        obj.__dict__.pop("archdsl_graph", None)


class StateMismatch(ValueError):
    """A state dict that does not fit the module built for a graph (``load_state_dict``'s complaint)."""


def build_loaded(graph: Graph, state: dict[str, torch.Tensor], check_inputs: bool = False,
                 source: str | None = None) -> torch.nn.Module:
    """An ``nn.Module`` for ``graph`` holding the tensors of ``state`` (every parameter and persistent buffer,
    strict): built on the meta device and given ``state``'s tensors (``load_state_dict(assign=True)``), so no
    weight is initialised only to be overwritten. Tensors shared under several names stay one Parameter.

    Where construction leaves a tensor outside ``state`` (a non-persistent buffer computed in ``__init__``), or
    cannot run on the meta device, the module is built on the CPU and ``state`` copied in: the buffers are computed.
    A misfit raises :class:`StateMismatch`. ``source``: the module source generated for ``graph`` with
    ``check_inputs``, when the caller has it already.
    """
    from archdsl.backends.torch.codegen import class_name, generate_source

    if source is None:
        source = generate_source(graph, check_inputs=check_inputs)
    cls = load_source(source, class_name(graph))
    return load_into(cls, state, graph, source)


def load_into(cls: type[torch.nn.Module], state: dict[str, torch.Tensor], graph: Graph | GraphThunk, source: str,
              mode: str | None = None) -> torch.nn.Module:
    """:func:`build_loaded` of a generated class: ``cls`` built on meta and given ``state``'s tensors, carrying
    ``graph`` (or a thunk; ``mode``: the graph's mode then) and ``source``."""
    meta: torch.nn.Module | None
    try:
        meta = on_meta(cls)
    except (RuntimeError, NotImplementedError):    # an __init__ computation the meta device cannot do
        meta = None
    ties, left_on_meta = _walk(meta, state) if meta is not None else ([], True)
    assign = not left_on_meta
    module = meta if meta is not None and assign else cls()
    ties = ties if assign else []           # a copying load keeps shared Parameters shared
    try:
        module.load_state_dict(state, strict=True, assign=assign)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise StateMismatch(str(exc)) from exc
    for first, others in ties:              # assign gave each name its own Parameter: share the first again
        for name in others:
            owner, _, leaf = name.rpartition(".")
            setattr(module.get_submodule(owner), leaf, module.get_parameter(first))
    return _finish(module, graph, source, mode)


def on_meta(cls: type[torch.nn.Module]) -> torch.nn.Module:
    """``cls()`` with every tensor on the meta device and the initialisers skipped where they would write to a
    meta tensor: a meta tensor holds no values, so ``kaiming_uniform_`` on it changes nothing but costs (about a
    third of a ResNet-50's construction). A tensor on a real device is initialised as ever."""
    with _meta_no_init()("meta"):
        return cls()


def _initialisers() -> frozenset:
    """The in-place initialisers (torch.nn.init and the Tensor methods they call) that only write values."""
    init = torch.nn.init
    names = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
             "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_")
    methods = ("uniform_", "normal_", "zero_", "fill_", "exponential_", "random_")
    return frozenset([*(getattr(init, n) for n in names if hasattr(init, n)),
                      *(getattr(torch.Tensor, n) for n in methods if hasattr(torch.Tensor, n))])


@functools.cache
def _meta_no_init() -> type:
    """The context class of :func:`on_meta` (made on first use: building a module with initialisation never
    needs it)."""
    from torch.utils._device import DeviceContext, _device_constructors  # what `with torch.device(...)` enters

    initialisers = _initialisers()
    constructors = _device_constructors()      # the factory functions DeviceContext gives a device

    class _MetaNoInit(DeviceContext):
        """``torch.device("meta")`` (tensors made without a device land on meta) that returns an initialiser's
        meta tensor untouched instead of dispatching the call."""

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func in initialisers:
                target = args[0] if args else kwargs.get("tensor")
                if isinstance(target, torch.Tensor) and target.is_meta:
                    return target
            elif func in constructors and kwargs.get("device") is None:     # DeviceContext's own rule, inlined
                kwargs["device"] = self.device
            return func(*args, **kwargs)

    return _MetaNoInit


def _walk(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> tuple[list[tuple[str, list[str]]], bool]:
    """One walk over the modules of a module built on meta: the parameters registered under several names
    ((first name, the other names)), and whether a buffer that ``state`` does not hold is left on meta."""
    names: dict[int, list[str]] = {}
    left_on_meta = False
    for prefix, m in module.named_modules(remove_duplicate=False):
        dot = f"{prefix}." if prefix else ""
        for leaf, p in m._parameters.items():
            if p is not None:
                names.setdefault(id(p), []).append(dot + leaf)
        for leaf, b in m._buffers.items():
            left_on_meta = left_on_meta or (b is not None and b.is_meta and dot + leaf not in state)
    return [(group[0], group[1:]) for group in names.values() if len(group) > 1], left_on_meta


def _finish(module: torch.nn.Module, graph: Graph | GraphThunk, source: str,
            mode: str | None = None) -> torch.nn.Module:
    # nn.Module's __setattr__ is typed for tensors and modules; these are plain attributes
    module.archdsl_source = source  # type: ignore[assignment]
    module.archdsl_graph = graph  # type: ignore[assignment]
    if mode is None:
        mode = graph().mode if isinstance(graph, GraphThunk) else graph.mode
    if mode == "eval":            # a deploy form: BatchNorm folded, dropout gone; eval semantics only
        module.eval()
    return module
