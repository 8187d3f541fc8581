"""Turn generated source into a live module, deterministically seeded."""

from __future__ import annotations

import hashlib
import linecache
import sys
import types

import torch
from torch.utils._device import DeviceContext, _device_constructors  # what `with torch.device(...)` enters

from archdsl.backends.torch.codegen import class_name, generate_source
from archdsl.ir.graph import Graph


def load_source(source: str, cls: str) -> type[torch.nn.Module]:
    """Import generated module source under a unique module name and return its class.

    The source is archdsl's own output (from codegen), never text from a spec file: running it is how
    a generated module comes to exist, as if it had been written to disk and imported.
    """
    digest = hashlib.sha1(source.encode()).hexdigest()[:16]
    name = f"archdsl_generated_{digest}"
    module = sys.modules.get(name)
    if module is None:
        filename = f"<archdsl-generated {digest}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        module = types.ModuleType(name)
        module.__file__ = filename
        code = compile(source, filename, "exec")
        exec(code, module.__dict__)  # noqa: S102 - our generated code (see docstring)
        sys.modules[name] = module
    return getattr(module, cls)


def build_module(graph: Graph, seed: int | None = 0, check_inputs: bool = False,
                 label: str = "a spec") -> torch.nn.Module:
    """An ``nn.Module`` for ``graph`` with PyTorch-default initialisation under ``seed`` (``label``: where the
    generated source says the graph came from)."""
    source = generate_source(graph, check_inputs=check_inputs, source=label)
    cls = load_source(source, class_name(graph))
    if seed is None:
        module = cls()
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = cls()
    return _finish(module, graph, source)


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
    if source is None:
        source = generate_source(graph, check_inputs=check_inputs)
    cls = load_source(source, class_name(graph))
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
    return _finish(module, graph, source)


def on_meta(cls: type[torch.nn.Module]) -> torch.nn.Module:
    """``cls()`` with every tensor on the meta device and the initialisers skipped where they would write to a
    meta tensor: a meta tensor holds no values, so ``kaiming_uniform_`` on it changes nothing but costs (about a
    third of a ResNet-50's construction). A tensor on a real device is initialised as ever."""
    with _MetaNoInit("meta"):
        return cls()


def _initialisers() -> frozenset:
    """The in-place initialisers (torch.nn.init and the Tensor methods they call) that only write values."""
    init = torch.nn.init
    names = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
             "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_")
    methods = ("uniform_", "normal_", "zero_", "fill_", "exponential_", "random_")
    return frozenset([*(getattr(init, n) for n in names if hasattr(init, n)),
                      *(getattr(torch.Tensor, n) for n in methods if hasattr(torch.Tensor, n))])


_INITIALISERS = _initialisers()
_CONSTRUCTORS = _device_constructors()      # the factory functions DeviceContext gives a device


class _MetaNoInit(DeviceContext):
    """``torch.device("meta")`` (tensors made without a device land on meta) that returns an initialiser's
    meta tensor untouched instead of dispatching the call."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _INITIALISERS:
            target = args[0] if args else kwargs.get("tensor")
            if isinstance(target, torch.Tensor) and target.is_meta:
                return target
        elif func in _CONSTRUCTORS and kwargs.get("device") is None:     # DeviceContext's own rule, inlined
            kwargs["device"] = self.device
        return func(*args, **kwargs)


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


def _finish(module: torch.nn.Module, graph: Graph, source: str) -> torch.nn.Module:
    # nn.Module's __setattr__ is typed for tensors and modules; these are plain attributes
    module.archdsl_source = source  # type: ignore[assignment]
    module.archdsl_graph = graph  # type: ignore[assignment]
    if graph.mode == "eval":            # a deploy form: BatchNorm folded, dropout gone; eval semantics only
        module.eval()
    return module
