"""Do two models compute the same function? Outputs compared on random inputs, with a relative error."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from archdsl.ir.dims import SymDim
from archdsl.ir.graph import Graph

TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}     # relative to the output's scale


@dataclass(frozen=True)
class Mismatch:
    """Where two models disagree: the output, the input sizes, and the relative error."""

    output: int
    sizes: dict[str, int]
    error: float
    tolerance: float

    def __str__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        return f"output {self.output} at {sizes}: relative error {self.error:.3g} > {self.tolerance:.1g}"


def relative_error(ref: torch.Tensor, out: torch.Tensor) -> float:
    """||ref - out|| / ||ref|| (absolute when ref is zero)."""
    diff = (ref.double() - out.double()).norm().item()
    scale = ref.double().norm().item()
    return diff / scale if scale > 0 else diff


def _concrete(d: int | SymDim, sizes: dict[str, int]) -> int:
    if not isinstance(d, int):
        raise ValueError(f"an input size {d} is left unbound by {sizes}")
    return d


def inputs_for(graph: Graph, sizes: dict[str, int], dtype: torch.dtype, seed: int) -> list[torch.Tensor]:
    """Random inputs of the graph's input types with symbols bound to ``sizes``."""
    from archdsl.analysis import substitute

    g = torch.Generator().manual_seed(seed)
    out = []
    for t in graph.inputs.values():
        shape = [_concrete(substitute(d, sizes), sizes) for d in t.shape]
        if t.dtype.startswith(("float", "bfloat")):
            out.append(torch.randn(shape, generator=g, dtype=torch.float64).to(dtype))
        else:
            out.append(torch.randint(0, 2, shape, generator=g))
    return out


def compare_outputs(a: torch.nn.Module, b: torch.nn.Module, inputs: list[torch.Tensor]) -> list[float]:
    """Relative error of each output of ``b`` against ``a`` on ``inputs``."""
    with torch.no_grad():
        ra, rb = a(*inputs), b(*inputs)
    ra = ra if isinstance(ra, tuple) else (ra,)
    rb = rb if isinstance(rb, tuple) else (rb,)
    return [relative_error(x, y) for x, y in zip(ra, rb, strict=True)]


def check_equivalent(a: torch.nn.Module, b: torch.nn.Module, graph: Graph, size_sets: Iterable[dict[str, int]],
                     dtype: torch.dtype = torch.float64, seed: int = 0,
                     tolerance: float | None = None) -> list[Mismatch]:
    """Mismatches of ``b`` against ``a`` (both in eval mode) on random inputs at each set of sizes."""
    tol = TOLERANCE.get(dtype, 1e-3) if tolerance is None else tolerance
    found = []
    for i, sizes in enumerate(size_sets):
        for k, err in enumerate(compare_outputs(a, b, inputs_for(graph, sizes, dtype, seed + i))):
            if not err <= tol:
                found.append(Mismatch(k, dict(sizes), err, tol))
    return found
