"""Symmetry derivation and weight matching speed.

Run ``python benchmarks/symmetry.py`` (``--repeat N`` for the best of N). Prints:
- derivation time (``archdsl.symmetry.derive``) of ResNet-152, ViT-B/16 and generated residual chains of
  1k and 10k nodes, with the per-node ratio of the 10k chain to the 1k one (1.0 = linear);
  goal: ResNet-152 under 1 s on a 2-core machine;
- weight matching of two independently initialised ResNet-18s: ``archdsl.symmetry`` on the derived classes
  vs Git Re-Basin's weight-matching algorithm written plainly below on a hand-written PermutationSpec (its
  ``resnet`` spec adapted to torchvision names), both on the same float64 weights; the time ratio and the
  matching objective each reaches (sum of <A, P(B)> over all weights).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np

import archdsl
from archdsl.symmetry import derive
from archdsl.symmetry.canon import align
from archdsl.symmetry.check import random_state

CHAIN = """
block Unit(c: int) {{
  "A residual unit: linear, batch norm, relu, linear, add (one hidden class per unit)."
  in x: [N, C]
  fc = Linear(c)
  norm = BatchNorm1d()
  proj = Linear(C)
  out relu(x |> fc |> norm) |> proj + x
}}

model Chain(width: int = 16, depth: int = {depth}) {{
  in x: [N, width]
  body = seq[Unit(width) for i in range(depth)]
  out x |> body
}}
"""


def best(fn, repeat: int) -> tuple[float, object]:
    """Best-of-``repeat`` seconds and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


# -- Git Re-Basin's weight matching, written plainly (numpy), on a hand-written spec --------------------
def resnet18_hand_spec() -> dict[str, tuple]:
    """axes_to_perm for torchvision's ResNet-18, written by hand as Git Re-Basin's users do."""
    spec: dict[str, tuple] = {"conv1.weight": ("P_bg0", None, None, None)}
    for name in ("weight", "bias", "running_mean", "running_var"):
        spec[f"bn1.{name}"] = ("P_bg0",)
    prev = "P_bg0"
    for layer in range(1, 5):
        stage = "P_bg0" if layer == 1 else f"P_bg{layer - 1}"
        for block in range(2):
            p = f"layer{layer}.{block}"
            inner = f"P_{p}_inner"
            spec[f"{p}.conv1.weight"] = (inner, prev, None, None)
            spec[f"{p}.conv2.weight"] = (stage, inner, None, None)
            for name in ("weight", "bias", "running_mean", "running_var"):
                spec[f"{p}.bn1.{name}"] = (inner,)
                spec[f"{p}.bn2.{name}"] = (stage,)
            if layer > 1 and block == 0:
                spec[f"{p}.downsample.0.weight"] = (stage, prev, None, None)
                for name in ("weight", "bias", "running_mean", "running_var"):
                    spec[f"{p}.downsample.1.{name}"] = (stage,)
            prev = stage
    spec["fc.weight"] = (None, prev)
    spec["fc.bias"] = (None,)
    return spec


def get_permuted_param(axes_to_perm, perm, k, params, except_axis=None):
    """Git Re-Basin: ``params[k]`` with every axis but ``except_axis`` permuted."""
    w = params[k]
    for axis, p in enumerate(axes_to_perm[k]):
        if axis != except_axis and p is not None:
            w = np.take(w, perm[p], axis=axis)
    return w


def reference_weight_matching(rng, axes_to_perm, params_a, params_b, max_iter=100):
    """Git Re-Basin's ``weight_matching`` (Ainsworth et al., 2023), numpy instead of jax."""
    from scipy.optimize import linear_sum_assignment

    perm_to_axes = defaultdict(list)
    for wk, axes in axes_to_perm.items():
        for axis, p in enumerate(axes):
            if p is not None:
                perm_to_axes[p].append((wk, axis))
    sizes = {p: params_a[axes[0][0]].shape[axes[0][1]] for p, axes in perm_to_axes.items()}
    perm = {p: np.arange(n) for p, n in sizes.items()}
    names = list(perm)
    for _ in range(max_iter):
        progress = False
        for i in rng.permutation(len(names)):
            p, n = names[i], sizes[names[i]]
            a = np.zeros((n, n))
            for wk, axis in perm_to_axes[p]:
                w_a = np.moveaxis(params_a[wk], axis, 0).reshape((n, -1))
                w_b = np.moveaxis(get_permuted_param(axes_to_perm, perm, wk, params_b, except_axis=axis), axis, 0)
                a += w_a @ w_b.reshape((n, -1)).T
            _, ci = linear_sum_assignment(a, maximize=True)
            old, new = a[np.arange(n), perm[p]].sum(), a[np.arange(n), ci].sum()
            progress = progress or new > old + 1e-12
            perm[p] = ci
        if not progress:
            break
    return perm


def objective(a: dict, b: dict) -> float:
    """Sum over float weights of <A, B>."""
    return float(sum(float((a[k].double() * b[k].double()).sum()) for k in a if a[k].is_floating_point()))


def main() -> None:
    """Run and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"derivation (best of {args.repeat})")
    rows = [(name, archdsl.compile(name)) for name in ("resnet152", "vit_b_16")]
    rows += [(f"chain-{d * 5}", archdsl.compile(CHAIN.format(depth=d))) for d in (200, 2000)]
    per_node = {}
    for name, graph in rows:
        t, spec = best(lambda g=graph: derive(g), args.repeat)
        per_node[name] = t / len(graph.nodes)
        print(f"  {name:<12} {len(graph.nodes):>6} nodes  {len(spec.classes):>5} classes  {t * 1e3:8.1f} ms  "
              f"{per_node[name] * 1e6:6.1f} us/node")
    print(f"  per-node ratio chain-10000 / chain-1000: {per_node['chain-10000'] / per_node['chain-1000']:.2f}")

    graph = archdsl.compile("resnet18")
    spec = derive(graph)
    a = random_state(archdsl.build(graph, seed=0))
    b = random_state(archdsl.build(graph, seed=1))
    ours_t, (_, aligned) = best(lambda: align(spec, a, b, seed=0), args.repeat)
    na = {k: v.numpy() for k, v in a.items()}
    nb = {k: v.numpy() for k, v in b.items()}
    hand = resnet18_hand_spec()
    ref_t, perm = best(lambda: reference_weight_matching(np.random.default_rng(0), hand, na, nb), args.repeat)
    import torch

    ref_aligned = {k: torch.from_numpy(np.ascontiguousarray(get_permuted_param(hand, perm, k, nb)))
                   if k in hand else b[k] for k in b}
    print(f"weight matching of two ResNet-18s (best of {args.repeat})")
    print(f"  archdsl (derived classes): {ours_t:7.3f} s  objective {objective(a, aligned):.6g}")
    print(f"  Git Re-Basin reference   : {ref_t:7.3f} s  objective {objective(a, ref_aligned):.6g}")
    print(f"  objective before matching: {objective(a, b):.6g}")
    print(f"  time ratio archdsl / reference: {ours_t / ref_t:.2f}")


if __name__ == "__main__":
    main()
