"""The small runtime generated modules import: containers, free-parameter init, input checks."""

from __future__ import annotations

import math

import torch
from torch import nn


class Container(nn.Module):
    """A named-layer container; ``c[0]`` reaches the entry named "0" (torch.nn.Sequential style names)."""

    def __getitem__(self, index: int) -> nn.Module:
        module = self._modules[str(index)]
        if module is None:
            raise KeyError(f"entry {index} of the container is empty")
        return module

    def __len__(self) -> int:
        return len(self._modules)


def _fill(kind: str):
    """The in-place fill for one initialiser kind: (tensor, Init, fan_in) -> None."""
    def uniform(t, init, fan_in):
        if "fan_in" in init:                     # PyTorch's conv/linear bias default: U(-1/sqrt(fan_in), ...)
            bound = 1.0 / math.sqrt(fan_in) if fan_in else 0.0
        else:
            bound = init.get("bound", 1.0 / math.sqrt(t.shape[-1]) if t.dim() else 1.0)
        t.uniform_(init.get("a", -bound), init.get("b", bound))

    def trunc_normal(t, init, fan_in):
        std = init.get("std", 1.0)
        nn.init.trunc_normal_(t, init.get("mean", 0.0), std, init.get("a", -2 * std), init.get("b", 2 * std))

    def kaiming_uniform(t, init, fan_in):        # nn.init.kaiming_uniform_ with leaky_relu gain, given fan_in
        a = init.get("a", 0.0)
        bound = math.sqrt(6.0 / ((1 + a * a) * fan_in)) if fan_in else 0.0
        t.uniform_(-bound, bound)

    return {
        "zeros": lambda t, init, fan_in: t.zero_(),
        "ones": lambda t, init, fan_in: t.fill_(1.0),
        "constant": lambda t, init, fan_in: t.fill_(init.get("value", 0.0)),
        "normal": lambda t, init, fan_in: t.normal_(init.get("mean", 0.0), init.get("std", 1.0)),
        "trunc_normal": trunc_normal, "uniform": uniform, "kaiming_uniform": kaiming_uniform,
        "xavier_uniform": lambda t, init, fan_in: nn.init.xavier_uniform_(t, init.get("gain", 1.0)),
    }[kind]


def new_tensor(shape: tuple[int, ...], init: str, dtype: str = "float32", parameter: bool = True,
               fan_in: int | None = None) -> torch.Tensor:
    """A fresh tensor initialised by an IR initialiser (every kind of :class:`archdsl.ir.init.Init`).

    ``fan_in`` is the parameter's declared fan-in (``kaiming_uniform``, ``uniform(fan_in)``); without one the
    last axis's size stands in for it.
    """
    from archdsl.ir.init import Init

    declared = Init.parse(init)
    t = torch.empty(shape, dtype=getattr(torch, dtype))
    with torch.no_grad():
        _fill(declared.kind)(t, declared, fan_in if fan_in is not None else (shape[-1] if shape else 1))
    return nn.Parameter(t) if parameter else t


class ParamHolder(nn.Module):
    """A module that only holds parameters declared by an op's ParamSpecs (LayerScale's ``gamma``)."""

    def __init__(self, specs: dict[str, tuple]) -> None:
        super().__init__()
        for name, (shape, init, dtype, fan_in) in specs.items():
            self.register_parameter(name, new_tensor(shape, init, dtype, parameter=True,  # type: ignore[arg-type]
                                                     fan_in=fan_in))   # parameter=True: an nn.Parameter


class InputShapeError(ValueError):
    """A tensor passed to a generated module does not match the spec's declared input type."""


def check_inputs(spec: tuple, tensors: tuple) -> None:
    """Check ranks, static dims, dtypes, size patterns (``32*P``) and the consistency of symbolic dims across
    inputs; the error names the input, where the spec declares it, and the axis that does not fit."""
    from archdsl.ir.dims import linear_form, parse_dim
    from archdsl.ir.symbols import constrained_form, pattern_note, pattern_text

    env: dict[str, int] = {}
    axes = []
    for (name, dims, dtype, where), t in zip(spec, tensors, strict=True):
        want = "[" + ", ".join(dims) + "]"
        if not isinstance(t, torch.Tensor):
            raise InputShapeError(f"input '{name}' (declared at {where}) must be a tensor {want}, got {type(t).__name__}")
        if t.dim() != len(dims) or str(t.dtype).removeprefix("torch.") != dtype:
            raise InputShapeError(f"input '{name}' (declared at {where}) expects {dtype}{want}, "
                                  f"got {str(t.dtype).removeprefix('torch.')}{list(t.shape)}")
        axes += [(name, where, want, list(t.shape), axis, text, int(size))
                 for axis, (text, size) in enumerate(zip(dims, t.shape, strict=True))]
    for name, where, want, got, axis, text, size in axes:     # bind: a bare symbol or a pattern such as 32*P
        rule = constrained_form(parse_dim(text))
        if rule is not None and rule[0] not in env:   # declared `where S % k == r`: S is the size itself
            if size % rule[1] != rule[2]:
                raise InputShapeError(f"input '{name}' (declared at {where}) expects {want}, got {got}: axis {axis} "
                                      f"should be {rule[0]} where {rule[0]} % {rule[1]} == {rule[2]} "
                                      f"({pattern_note(rule[1], rule[2])}), not {size}")
            env[rule[0]] = size
            continue
        form = linear_form(parse_dim(text))
        if form is None or form[0] in env:
            continue
        symbol, a, b = form
        if (size - b) % a or size < b:
            note = pattern_text(parse_dim(text)) or f"at least {b}"
            raise InputShapeError(f"input '{name}' (declared at {where}) expects {want}, got {got}: axis {axis} "
                                  f"should be {text} ({note}), not {size}")
        env[symbol] = (size - b) // a
    for name, where, want, got, axis, text, size in axes:     # check: every axis against the bound symbols
        d = parse_dim(text)
        if isinstance(d, int) or d.symbols <= env.keys():
            expected = d if isinstance(d, int) else d.evaluate(env)
            if expected != size:
                raise InputShapeError(f"input '{name}' (declared at {where}) expects {want}, got {got}: axis {axis} "
                                      f"should be {text}" + (f" = {expected}" if text != str(expected) else ""))


VALUES_ATTR = "_archdsl_values"


class ValueCache:
    """The last values a generated module's ``_parameter_values`` returned, with the key of the sources they were
    computed from; ``computed`` counts the calls that computed them while caching was allowed (a miss).

    It lives in the module's ``__dict__`` (no state_dict key, no buffer); a copy (``copy.deepcopy``, pickle,
    ``torch.save``) starts empty, so it never carries tensors of another module.
    """

    __slots__ = ("entry", "computed")

    def __init__(self) -> None:
        self.entry: tuple | None = None      # (sources, key, values, the values' versions)
        self.computed = 0

    def __reduce__(self):
        return (ValueCache, ())

    def __deepcopy__(self, memo: dict) -> ValueCache:
        return ValueCache()


def _watched() -> bool:
    """True while something observes or transforms the ops as they run: a tracer (torch.jit.trace), the
    compiler or exporter (torch.compile, torch.export, torch.onnx.export), a functorch transform (vmap, grad),
    autocast (it changes dtypes), or a torch function/dispatch mode (FakeTensorMode, FlopCounterMode,
    ``with torch.device``). The values are then computed in the open, as timm's LeViT does under tracing."""
    return (torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()
            or torch._C._is_any_autocast_enabled() or torch._C._len_torch_function_stack() > 0
            or torch._C._len_torch_dispatch_stack() > 0 or torch._C._are_functorch_transforms_active())


def parameter_values(module: nn.Module) -> tuple | None:
    """The values ``module._parameter_values()`` returns, reused from an earlier call while they cannot have
    changed; None where forward must compute them inline, in their own places (generated code:
    ``parameter_values = rt.parameter_values(self)``, then ``if parameter_values is None: <the ops>``).

    The values depend on ``module._parameter_sources()`` alone (see ``codegen_cache``). They are reused while
    every source is the same tensor object with the same ``_version`` (in-place edits, ``load_state_dict``),
    data pointer, dtype, device and shape (``.to()``, ``.half()``, ``p.data = ...``), in the same inference
    mode, and no value was overwritten. None (computed inline, nothing kept) when autograd may need them (grad
    enabled and a source requires grad: training computes them every call, as the same graph as uncached code)
    or while ``_watched``. Edits through ``.data`` bypass the version counter: ``module.train()``/``eval()``
    forgets the values.
    """
    if _watched():
        return None
    sources = module._parameter_sources()  # type: ignore[operator]   # generated methods, not submodules
    if torch.is_grad_enabled() and any(s.requires_grad for s in sources):
        return None
    try:
        key = (torch.is_inference_mode_enabled(),
               *[(id(s), s._version, s.data_ptr(), s.dtype, s.device, s.shape) for s in sources])
    except RuntimeError:         # a source made under inference_mode has no version counter: edits are unseen
        return None
    cache = module.__dict__.get(VALUES_ATTR)
    if cache is None:
        cache = module.__dict__[VALUES_ATTR] = ValueCache()
    entry = cache.entry          # the sources held in entry[0] keep their ids unique
    if entry is not None and entry[1] == key and all(
            n is None or v._version == n for v, n in zip(entry[2], entry[3], strict=True)):
        return entry[2]
    values = module._parameter_values()  # type: ignore[operator]
    cache.computed += 1      # a value overwritten in place is computed anew (inference tensors have no versions)
    cache.entry = (sources, key, values, [None if v.is_inference() else v._version for v in values])
    return values


def forget_values(module: nn.Module) -> None:
    """Drop the values ``parameter_values`` keeps for ``module`` (the next call computes them)."""
    cache = module.__dict__.get(VALUES_ATTR)
    if cache is not None:
        cache.entry = None


def reparameterize(module: nn.Module) -> nn.Module:
    """The deploy form of a module built by archdsl, with weights computed from its current ones (eval mode)."""
    from archdsl.errors import Diagnostic, UsageError
    from archdsl.simplifying import simplify

    graph = getattr(module, "archdsl_graph", None)
    if graph is None:
        raise UsageError(Diagnostic("this module was not built by archdsl.build (it carries no graph)",
                                    hint="build it with archdsl.build(...) or load it with archdsl.load_built(...)"))
    return simplify(graph, weights=module).module()


def __getattr__(name: str):
    """``rt.functional`` (helpers for generated code), ``rt.decoding`` (model.step) and ``rt.kernels``
    (archdsl.kernels) load on first use."""
    if name in ("functional", "kernels", "decoding"):
        import importlib

        return importlib.import_module("archdsl.kernels" if name == "kernels" else f"archdsl.backends.torch.{name}")
    raise AttributeError(name)
