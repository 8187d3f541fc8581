"""Linear attention on CPU: archdsl's chunked PyTorch forms against baselines measured in this process.

Run from the repository root: ``python -m benchmarks.linear_attention`` (``--quick`` for T in {1k, 2k},
``--lengths 1024 4096``, ``--repeat``, ``--threads``). Shapes B1 H4 D64, fp32. Every ratio is ours / baseline,
the contenders interleaved (ABAB, then BABA).

Baselines: ``plain`` is the textbook chunked linear attention (chunk 64, q k^T masked by multiplication, one
cumsum of the chunk states; what fla's ``naive_chunk_linear_attn`` computes); ``sdpa`` is causal softmax
attention (F.scaled_dot_product_attention); ``loop`` is the token-by-token recurrence (archdsl's naive form);
``fla`` is fla's own torch reference for the same op when fla-core is importable (``naive_chunk_linear_attn``,
with ``normalize=True`` for the normaliser; ``naive_chunk_simple_gla``; ``delta_rule_chunkwise``;
``naive_chunk_gated_delta_rule``; for GLA, which fla has only as a token loop in torch, ``naive_recurrent_gla``
up to ``--loop-max``); ``plain gated`` is the textbook chunked GLA (q exp(b), k exp(-b) inside a chunk: finite
for these gates only). Ours: ``linear_attn`` (identity map), ``simple_gla`` (data-dependent decay), ``elu1+norm``
(Katharopoulos feature map and normaliser), ``gla``, ``delta_rule`` and ``gated_delta``. Also printed: forward+backward / forward, and the bytes autograd saves for the
backward per token (memory linear in T: constant per token). Times are process CPU times (the machine is
shared; interference only adds wall time): best of the rounds, ratio the median per-round ratio. It prints.

Targets: chunk forward <= 1.0x plain (with gates and normaliser); forward+backward <= 3x forward.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F

from archdsl import kernels


def plain_chunk(q, k, v, chunk=64):
    """The plain chunked form on [B, T, H, D] (T a multiple of ``chunk``): fla's naive_chunk_linear_attn."""
    b, t, h, d = q.shape
    n = t // chunk
    q, k, v = (x.reshape(b, n, chunk, h, d).permute(0, 3, 1, 2, 4) for x in (q * d ** -0.5, k, v))
    kv = (k.transpose(-1, -2) @ v).cumsum(2)
    kv = torch.cat([torch.zeros_like(kv[:, :, :1]), kv[:, :, :-1]], 2)
    mask = torch.triu(torch.ones(chunk, chunk, dtype=torch.bool), 1)
    o = q @ kv + (q @ k.transpose(-1, -2)).masked_fill(mask, 0) @ v
    return o.permute(0, 2, 3, 1, 4).reshape(b, t, h, d)


def plain_chunk_gla(q, k, v, g, chunk=64):
    """The textbook chunked GLA on [B, T, H, D]: q exp(b) (k exp(-b))^T inside a chunk (overflows for strong
    decays: a baseline for speed only), the state across chunks."""
    b, t, h, d = q.shape
    n = t // chunk
    q, k, v, g = (x.reshape(b, n, chunk, h, d).permute(0, 3, 1, 2, 4) for x in (q * d ** -0.5, k, v, g))
    cum = g.cumsum(-2)
    last = cum[..., -1:, :]
    scores = (q * cum.exp()) @ (k * (-cum).exp()).transpose(-1, -2)
    mask = torch.triu(torch.ones(chunk, chunk, dtype=torch.bool), 1)
    o = scores.masked_fill(mask, 0) @ v
    contrib = (k * (last - cum).exp()).transpose(-1, -2) @ v
    state, prevs = q.new_zeros(b, h, d, d), []
    for a, u in zip(last.squeeze(-2).exp()[..., None].unbind(2), contrib.unbind(2), strict=True):
        prevs.append(state)
        state = a * state + u
    o = o + (q * cum.exp()) @ torch.stack(prevs, 2)
    return o.permute(0, 2, 3, 1, 4).reshape(b, t, h, d)


def fla_references(x, loop_ok: bool) -> dict[str, Callable]:
    """fla's torch references for each of ours (when fla-core is installed; CPU-capable code), else {}."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")         # fla warns that Triton falls back to CPU
            from fla.ops.delta_rule.naive import delta_rule_chunkwise
            from fla.ops.gated_delta_rule.naive import naive_chunk_gated_delta_rule
            from fla.ops.gla.naive import naive_recurrent_gla
            from fla.ops.linear_attn.naive import naive_chunk_linear_attn
            from fla.ops.simple_gla.naive import naive_chunk_simple_gla
    except Exception:       # fla missing, or its import needs a GPU driver
        return {}
    q, k, v, ku, beta = x["q"], x["k"], x["v"], x["k_unit"], x["beta"]
    bh = lambda t: t.transpose(1, 2)     # noqa: E731 - delta_rule_chunkwise takes [B, H, T, D]
    out = {
        "linear_attn": lambda: naive_chunk_linear_attn(q, k, v),
        "simple_gla": lambda: naive_chunk_simple_gla(q, k, v, x["g"]),
        "elu1+norm": lambda: naive_chunk_linear_attn(F.elu(q) + 1, F.elu(k) + 1, v, normalize=True),
        "delta_rule": lambda: delta_rule_chunkwise(bh(q), bh(ku), bh(v), bh(beta), chunk_size=64),
        "gated_delta": lambda: naive_chunk_gated_delta_rule(q, ku, v, x["g"], beta),
    }
    if loop_ok:
        out["gla"] = lambda: naive_recurrent_gla(q, k, v, x["gk"])
    return out


def fla_available() -> bool:
    """True when fla-core's torch references import."""
    return bool(fla_references(inputs(64), True))


def interleaved(ours: Callable, theirs: Callable, repeat: int) -> tuple[float, float, float]:
    """(ratio, ours ms, theirs ms) over ``repeat`` alternating rounds: the median per-round ratio of process CPU
    times (on a shared machine interference only adds wall time) and the best CPU times."""
    rounds = []
    for i in range(repeat):
        times = {}
        for name in (("a", "b") if i % 2 == 0 else ("b", "a")):
            fn = ours if name == "a" else theirs
            start = time.process_time()
            fn()
            times[name] = time.process_time() - start
        rounds.append((times["a"], times["b"]))
    return (statistics.median(a / max(b, 1e-9) for a, b in rounds), min(a for a, _ in rounds) * 1e3,
            min(b for _, b in rounds) * 1e3)


def saved_bytes(fn: Callable) -> int:
    """Bytes of the tensors autograd saves for the backward of ``fn()``."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def inputs(t: int, requires_grad: bool = False):
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, t, 4, 64, generator=gen) for _ in range(3))
    g = F.logsigmoid(torch.randn(1, t, 4, generator=gen) + 3)
    gk = F.logsigmoid(torch.randn(1, t, 4, 64, generator=gen) + 3) / 16
    beta = torch.rand(1, t, 4, generator=gen)
    k_unit = F.normalize(k, dim=-1)
    out = {"q": q, "k": k, "v": v, "g": g, "gk": gk, "beta": beta, "k_unit": k_unit}
    return {n: x.requires_grad_(requires_grad) for n, x in out.items()}


def ours(x) -> dict[str, Callable]:
    q, k, v = x["q"], x["k"], x["v"]
    return {
        "linear_attn": lambda: kernels.linear_attn(q, k, v, normalize=False, mode="chunk")[0],
        "simple_gla": lambda: kernels.simple_gla(q, k, v, x["g"], mode="chunk")[0],
        "elu1+norm": lambda: kernels.linear_attn(q, k, v, feature_map="elu1", normalize=True, mode="chunk")[0],
        "gla": lambda: kernels.gla(q, k, v, x["gk"], mode="chunk")[0],
        "delta_rule": lambda: kernels.delta_rule(q, x["k_unit"], v, x["beta"], mode="chunk")[0],
        "gated_delta": lambda: kernels.gated_delta_rule(q, x["k_unit"], v, x["g"], x["beta"], mode="chunk")[0],
    }


def forward_ratios(t: int, args: argparse.Namespace) -> None:
    """Forward of each of ours against each baseline (no autograd)."""
    x = inputs(t)
    q, k, v = x["q"], x["k"], x["v"]
    baselines = {"plain": lambda: plain_chunk(q, k, v),
                 "sdpa": lambda: F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                                                v.transpose(1, 2), is_causal=True)}
    fla = fla_references(x, t <= args.loop_max)
    with torch.no_grad():
        for name, fn in ours(x).items():
            parts = []
            mine_bases = dict(baselines)
            if name == "gla":
                mine_bases["plain gated"] = lambda: plain_chunk_gla(q, k, v, x["gk"])
            if name in fla:
                mine_bases["fla"] = fla[name]
            for base, ref in mine_bases.items():
                ratio, mine, theirs = interleaved(fn, ref, args.repeat)
                parts.append(f"{ratio:5.2f}x {base} ({theirs:7.1f} ms)")
            print(f"T={t:>5} fwd {name:>11} {mine:7.1f} ms: " + ", ".join(parts))
        if t <= args.loop_max:
            ratio, mine, theirs = interleaved(ours(x)["simple_gla"],
                                              lambda: kernels.simple_gla(q, k, v, x["g"], mode="naive"),
                                              max(1, args.repeat // 3))
            print(f"T={t:>5} fwd  simple_gla vs token loop: {ratio:.4f}x ({mine:.1f} ms vs {theirs:.1f} ms)")


def backward_ratios(t: int, args: argparse.Namespace) -> None:
    """Forward+backward against forward, and the bytes saved for the backward per token."""
    for name, fn in ours(inputs(t, requires_grad=True)).items():
        def both(fn=fn):
            out = fn()
            out.backward(torch.ones_like(out))

        def fwd(fn=fn):
            with torch.no_grad():
                fn()

        ratio, mine, _ = interleaved(both, fwd, args.repeat)      # as many rounds as the forward ratios
        per_token = saved_bytes(fn) / t
        print(f"T={t:>5} fwd+bwd {name:>11} {mine:7.1f} ms = {ratio:4.2f}x forward; saved for backward "
              f"{per_token / 1024:6.1f} KiB/token")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--quick", action="store_true", help="T in {1024, 2048}, 3 rounds")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--loop-max", type=int, default=4096, help="longest T for the token-loop baselines")
    parser.add_argument("--forward-only", action="store_true", help="skip forward+backward")
    args = parser.parse_args()
    if args.quick:
        args.lengths, args.repeat = [1024, 2048], 3
    torch.set_num_threads(args.threads)
    fla = fla_available()
    print(f"B1 H4 D64 fp32, {args.threads} threads, median of {args.repeat} interleaved rounds; ratio = ours / "
          f"baseline; fla torch references: {'yes' if fla else 'not importable'}")
    for t in args.lengths:
        forward_ratios(t, args)
        if not args.forward_only:
            backward_ratios(t, args)

if __name__ == "__main__":
    main()
