"""Numerical checks of a derived symmetry: f(g . theta)(x) == f(theta)(x), in float64, eval mode.

Weights are the seeded PyTorch initialisation with every constant-initialised tensor (biases, norm
affines, BatchNorm running statistics) replaced by random values, so a wrong permutation of a bias or a
statistic shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from archdsl.errors import ArchError
from archdsl.ir.graph import Graph
from archdsl.ir.symbols import sizes_near
from archdsl.symmetry.spec import ALL_KINDS, GroupElement, SymmetrySpec

if TYPE_CHECKING:
    import torch

HE_GAIN = 6 ** 0.5     # kaiming_uniform(a=sqrt(5)) has std 1/sqrt(3 fan_in); this makes it sqrt(2 / fan_in)
SIDES = (8, 16, 32, 64, 96, 128, 160, 224, 299)


def example_sizes(graph: Graph, batch: int = 4) -> dict[str, int]:
    """Sizes for the symbolic input dims: ``batch`` for leading dims, the smallest side that fits for others."""
    from archdsl.analysis import bind

    lead = {str(t.shape[0]) for t in graph.inputs.values() if t.rank and not isinstance(t.shape[0], int)}
    for side in SIDES:
        env = sizes_near(graph.inputs, side, batch, lead)      # P = side // 32 for [N, 3, 32*P, ..]
        try:
            bind(graph, env)
        except ArchError:
            continue
        return env
    return sizes_near(graph.inputs, SIDES[-1], batch, lead)


def random_state(module, seed: int = 0) -> dict:
    """The module's float64 state with every 1-d tensor (biases, norm affines, running statistics) drawn at
    random, so that a misplaced bias or statistic shows (running variances stay positive), and the other
    weights rescaled to keep activations from shrinking with depth."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, t in module.state_dict().items():
        t = t.detach().clone()
        if t.is_floating_point():
            t = t.double()
            if t.dim() <= 1 or bool((t == t.flatten()[0]).all()):
                noise = torch.rand(t.shape, generator=gen, dtype=torch.float64)
                if name.endswith("running_var"):
                    t = 0.1 + 2.9 * noise
                else:
                    t = 0.5 + noise if bool((t == 1).all()) else noise - 0.5
            else:
                t = t * HE_GAIN            # PyTorch's default init shrinks activations layer by layer
        out[name] = t
    return out


def example_inputs(graph: Graph, env: dict[str, int], seed: int = 0) -> list:
    """Random float64 inputs (zeros for integer inputs) with the bound shapes."""
    import torch

    from archdsl.analysis import bind

    gen = torch.Generator().manual_seed(seed)
    out = []
    for t in bind(graph, env).inputs.values():
        shape = tuple(int(d) for d in t.shape)
        dtype = getattr(torch, t.dtype)
        out.append(torch.randn(shape, generator=gen, dtype=torch.float64) if dtype.is_floating_point
                   else torch.zeros(shape, dtype=dtype))
    return out


def relative_error(ref, out) -> float:
    """``||ref - out|| / ||ref||`` over all outputs, in float64."""
    num = sum(float((r.double() - o.double()).norm() ** 2) for r, o in zip(ref, out, strict=True))
    den = sum(float(r.double().norm() ** 2) for r in ref)
    return (num / max(den, 1e-300)) ** 0.5


@dataclass
class Harness:
    """A float64 eval-mode module of a graph, random weights and inputs, to run weights through."""

    graph: Graph
    module: torch.nn.Module
    state: dict
    inputs: list
    reference: tuple | None = None

    @classmethod
    def build(cls, graph: Graph, seed: int = 0, sizes: dict[str, int] | None = None) -> Harness:
        """Build the module and draw weights and inputs."""
        import archdsl

        module = archdsl.build(graph, seed=seed).double().eval()
        return cls(graph, module, random_state(module, seed), example_inputs(graph, sizes or example_sizes(graph)))

    def run(self, state: dict) -> tuple:
        """The outputs with weights ``state``."""
        import torch

        self.module.load_state_dict(state)
        with torch.no_grad():
            out = self.module(*self.inputs)
        return out if isinstance(out, tuple) else (out,)

    def error(self, spec: SymmetrySpec, g: GroupElement, keep=None) -> float:
        """Relative change of the outputs when ``g`` acts on the weights."""
        if self.reference is None:
            self.reference = self.run(self.state)
        return relative_error(self.reference, self.run(spec.apply(self.state, g, keep)))


def check(graph: Graph, spec: SymmetrySpec, seeds=(0, 1), kinds=ALL_KINDS, sizes=None) -> list[float]:
    """Relative output errors for random group elements (one per seed); all should be ~1e-15."""
    h = Harness.build(graph, sizes=sizes)
    return [h.error(spec, spec.sample(s, kinds)) for s in seeds]
