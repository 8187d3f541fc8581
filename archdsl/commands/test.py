"""``archdsl test FILE``: property-test the simplify passes on your own spec, on numbers.

For each trial: random weights (BatchNorm statistics far from (0, 1), signed scales, non-zero biases), then
every pass of the pipeline one step at a time; after each step that changes the graph, the rewritten model
must compute what the original computes in eval mode, in float64, on random inputs at two sizes (odd and
even, so border pixels and stride parity are covered). Exits 1 naming the first pass that changed the
function, with a command that reproduces it.

Then the symmetry checks: the model's weight-space symmetry group is derived (``archdsl symmetries``), one
random group element per trial must leave the outputs unchanged (float64, relative 1e-9), and the pipeline
must commute with the group (T(g.theta) = rho(g).T(theta), and no symmetry lost). ``--no-symmetry`` skips them.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from archdsl.api import compile
from archdsl.commands.common import add_spec_args, check_seed, parse_params, spec_source
from archdsl.errors import ArchError, Diagnostic, UsageError

EPILOG = """examples:
  archdsl test specs/repvgg.arch -m repvgg_a0 --input N=1,H=32,W=32
  archdsl test my_block.arch --trials 20 --passes fold-bn
  archdsl test mobileone_s0 --seed 7 --trials 1          # reproduce one failing trial"""

DEFAULT_SIZES = (32, 33)          # every symbolic spatial size, once even and once odd


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("test", help="property-test the simplify passes on a spec (outputs equal in float64)",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_spec_args(p)
    p.add_argument("--passes", default="deploy", metavar="PIPELINE|P1,P2", help="what to test (default: deploy)")
    p.add_argument("--trials", type=int, default=3, help="random weight draws (default 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first trial (trial i uses seed + i)")
    p.add_argument("--input", action="append", metavar="N=1,H=32,...",
                   help="input sizes to test at (repeatable: one set per flag); default N=2 and every other "
                        "size 32, then 33")
    p.add_argument("--tolerance", type=float, default=1e-10, help="relative error allowed (default 1e-10)")
    p.add_argument("--no-symmetry", action="store_true", help="skip the symmetry and equivariance checks")


def _size_sets(graph, given: list[str] | None) -> list[dict[str, int]]:
    from archdsl.analysis import parse_sizes

    if given:
        return [parse_sizes(text) for text in given]
    from archdsl.ir.symbols import sizes_near

    return [sizes_near(graph.inputs, n, 2, lead={"N", "B"}) for n in DEFAULT_SIZES]


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        filled = 30 * done // max(total, 1)
        print(f"\r  [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} trials", end="", file=sys.stderr,
              flush=True)


def run(args: argparse.Namespace) -> int:
    """Run the trials; 0 when every step of every trial kept the function, 1 at the first that did not."""
    import torch

    from archdsl.backends.torch.build import build_module
    from archdsl.ir.weights import Weights
    from archdsl.passes import resolve, run_pipeline
    from archdsl.testing import check_equivalent, randomize

    check_seed(args.seed)
    if not 1 <= args.trials <= 10_000:
        raise UsageError(Diagnostic(f"--trials must be between 1 and 10000, got {args.trials}"))
    graph = compile(spec_source(args.file), args.model, **parse_params(args.param))
    resolve(args.passes)
    sizes = _size_sets(graph, args.input)
    checked = 0
    steps_seen: set[str] = set()
    for trial in range(args.trials):
        seed = args.seed + trial
        model = randomize(build_module(graph, seed=seed).double(), seed=seed).eval()

        def check(step, weights, model=model, seed=seed) -> None:
            nonlocal checked
            rewritten = build_module(step.graph, seed=None).double()
            rewritten.load_state_dict(weights.state_dict(), strict=True)
            try:
                bad = check_equivalent(model, rewritten.eval(), graph, sizes, torch.float64, seed, args.tolerance)
            except (RuntimeError, ValueError) as exc:
                raise UsageError(Diagnostic(f"the model does not run at {sizes}: {str(exc)[:200]}",
                                            hint="give sizes it accepts with --input N=1,H=64,W=64")) from None
            checked += 1
            steps_seen.add(step.pass_name)
            if bad:
                print(file=sys.stderr)
                raise _Failure(step, bad[0], seed)

        try:
            run_pipeline(graph, Weights.of(model.state_dict(), graph), args.passes, on_step=check)
        except _Failure as failure:
            print(failure.explain(args), file=sys.stderr)
            return 1
        _progress(trial + 1, args.trials)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    at = "; ".join(", ".join(f"{k}={v}" for k, v in s.items()) for s in sizes)
    print(f"ok: {args.trials} trial(s) x {len(steps_seen)} pass(es) that changed {graph.name} "
          f"({', '.join(sorted(steps_seen)) or 'none'}), {checked} step(s) checked at {at}; "
          f"outputs equal in float64 within {args.tolerance:g}")
    return 0 if args.no_symmetry else _symmetry(graph, args, sizes[0])


SOUND = 1e-9          # a symmetry changes the outputs by rounding only (float64)


@dataclass(frozen=True)
class _Pipeline:
    """The tested pipeline as one rewrite (run to its fixpoint), for the equivariance check."""

    passes: str
    name: str = "pipeline"

    def apply(self, graph, weights=None):
        from archdsl.passes import PassResult, run_pipeline

        result = run_pipeline(graph, weights, self.passes)
        return PassResult(result.graph, result.weights, result.graph != graph)


def _symmetry(graph, args: argparse.Namespace, sizes: dict[str, int]) -> int:
    """Random group elements keep the outputs; the pipeline commutes with the group. 0 when both hold."""
    from archdsl.symmetry import derive
    from archdsl.symmetry.check import Harness
    from archdsl.symmetry.equivariance import check_pass

    spec = derive(graph)
    harness = Harness.build(graph, seed=args.seed, sizes=sizes)
    worst = max(harness.error(spec, spec.sample(args.seed + t)) for t in range(args.trials))
    eq = check_pass(_Pipeline(args.passes), graph.replace(mode="eval"), harness.state, seed=args.seed)
    groups = f"{len(spec.classes)} classes, {len(spec.block_classes)} block classes"
    if worst >= SOUND:
        print(f"FAIL: symmetry ({groups}): a random group element changed the outputs by {worst:.2e}; "
              f"see `archdsl symmetries {args.file} --check 3`", file=sys.stderr)
        return 1
    if eq.max_error > args.tolerance:
        print(f"FAIL: the {args.passes} pipeline does not commute with the symmetry group: T(g.theta) differs "
              f"from rho(g).T(theta) by {eq.max_error:.2e}", file=sys.stderr)
        return 1
    print(f"ok: symmetry ({groups}): {args.trials} random group element(s) change the outputs by at most "
          f"{worst:.1e}; the {args.passes} pipeline commutes with the group "
          f"({'bitwise' if eq.bitwise else f'within {eq.max_error:.1e}'})")
    for note in eq.diagnostics:                     # symmetry the rewrite lost or renamed: reported, not an error
        print(f"  note: {note}")
    return 0


class _Failure(ArchError):
    """A step that changed the function (internal: rendered by ``run``)."""

    def __init__(self, step, mismatch, seed: int):
        super().__init__(Diagnostic(f"pass {step.pass_name} changed the function: {mismatch}"))
        self.step, self.mismatch, self.seed = step, mismatch, seed

    def explain(self, args: argparse.Namespace) -> str:
        changes = "\n".join(f"  {c.describe()}" for c in self.step.changes[:5])
        extra = f" -m {args.model}" if args.model else ""
        return (f"FAIL: pass {self.step.pass_name} (round {self.step.round}) changed the function: {self.mismatch}\n"
                f"{changes}\nreproduce: archdsl test {args.file}{extra} --passes {args.passes} "
                f"--seed {self.seed} --trials 1")
