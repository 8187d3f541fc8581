"""The linear-attention family in ONNX: the recurrences of the kernels' naive.py, exact.

    S[t] = decay[t] * S[t-1] + k[t] v[t]^T            (linear attention, retention, lightning, simple GLA, GLA)
    S[t] = exp(g[t]) S[t-1];  S[t] += beta[t] k[t] (v[t] - S[t]^T k[t])^T           (delta rule, gated)
    o[t] = scale * q[t]^T S[t]

Inputs are [B, T, H, D]. The causal scalar-gated forms (linear attention, retention, lightning, simple GLA)
lower to a parallel chunked form (see ``_chunked``: CumSum, masks, MatMul, Exp; no loop). GLA, the delta rule,
the bidirectional forms and packed sequences lower to a ``Scan`` over time with state [B, H, K, V] (the
initial state, or zeros); the bidirectional form adds a reversed scan with the shifted gate and subtracts the
diagonal counted twice (as the kernels' ``bidirectional``). Packed sequences (``cu_seqlens``) are padded to a
batch and unpadded in the graph, as the kernels' ``Packing`` does. Computation is in float32 (float64 for
float64 inputs); the output has v's dtype; the final state is the op's second output.
"""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from archdsl.backends.onnx.emitter import DTYPES, INT64_MAX, Emitter, NodeEmitter
from archdsl.backends.onnx.registry import lowering
from archdsl.ops import linear_attention as LA

CHUNK = 64          # tokens per chunk of the parallel form


class _Body(Emitter):
    """A Scan body: its own node list; constants and names shared with the outer graph (outer-scope values)."""

    def __init__(self, outer: Emitter) -> None:
        super().__init__(outer.opset)
        self.initializers, self._consts, self._names = outer.initializers, outer._consts, outer._names


def _cast(e: NodeEmitter, x: ir.Value, have: str, want: str) -> ir.Value:
    return x if have == want else e.op("Cast", x, to=DTYPES[want])


def _feature_map(e: NodeEmitter, op: LA.LinearAttention, x: ir.Value, dt: str,
                 lengths: ir.Value | None = None) -> ir.Value:
    """phi(x) on [B, T, H, K] (backends/torch/kernels/feature_maps.py); ``lengths`` [B]: cosFormer's M per sequence."""
    fm = op.feature_map
    if fm == "identity":
        return x
    if fm == "elu1":
        return e.op("Add", e.op("Elu", x, alpha=1.0), e.scalar(1.0, dt))
    if fm == "relu":
        return e.op("Relu", x)
    r = e.op("Relu", x)
    if fm == "focused":
        r = e.op("Add", r, e.scalar(1e-6, dt))
        rp = e.op("Pow", r, e.scalar(op.focus_power, dt))
        last = e.i64([-1])
        ratio = e.op("Div", e.op("ReduceL2", r, last, keepdims=1), e.op("ReduceL2", rp, last, keepdims=1))
        return e.op("Mul", rp, ratio)
    # cosformer: [relu(x) cos(pi/2 i/M), relu(x) sin(pi/2 i/M)] for positions i = 1..T, M = cosformer_len or T
    steps = e.op("Squeeze", e.axis_size(x, 1), e.i64([0]))
    positions = e.op("Cast", e.op("Range", e.i64(1), e.op("Add", steps, e.i64(1)), e.i64(1)), to=DTYPES[dt])
    if op.cosformer_len:
        length = e.scalar(max(op.cosformer_len, 1), dt)
    elif lengths is not None:       # packed sequences: each its own length, [B, 1]
        length = e.op("Unsqueeze", e.op("Max", e.op("Cast", lengths, to=DTYPES[dt]), e.scalar(1.0, dt)), e.i64([1]))
    else:
        length = e.op("Max", e.op("Cast", steps, to=DTYPES[dt]), e.scalar(1.0, dt))
    angle = e.op("Mul", e.op("Div", positions, length), e.scalar(math.pi / 2, dt))
    angle = e.op("Unsqueeze", angle, e.i64([-1, -2]))           # [(B,) T, 1, 1] against [B, T, H, K]
    return e.op("Concat", e.op("Mul", r, e.op("Cos", angle)), e.op("Mul", r, e.op("Sin", angle)), axis=-1)


class _Packing:
    """Packed sequences [1, total, ...] <-> a padded batch [N, Tmax, ...] (zeros past each end), as the kernels'
    ``Packing``: zero keys, values and gates leave a state unchanged, so the padding changes nothing."""

    def __init__(self, e: NodeEmitter, cu: ir.Value, x: ir.Value, dt: str) -> None:
        self.e, self.zero = e, e.scalar(0.0, dt)
        cu = e.op("Cast", cu, to=ir.DataType.INT64)
        starts = e.op("Slice", cu, e.i64([0]), e.i64([-1]), e.i64([0]))
        self.lengths = e.op("Sub", e.op("Slice", cu, e.i64([1]), e.i64([INT64_MAX]), e.i64([0])), starts)   # [N]
        longest = e.op("Max", e.op("ReduceMax", self.lengths, e.i64([0]), keepdims=0), e.i64(1))
        pos = e.op("Range", e.i64(0), longest, e.i64(1))                                                 # [Tmax]
        last = e.op("Sub", e.op("Squeeze", e.axis_size(x, 1), e.i64([0])), e.i64(1))
        index = e.op("Add", e.op("Unsqueeze", starts, e.i64([1])), e.op("Unsqueeze", pos, e.i64([0])))
        self.index = e.op("Max", e.op("Min", index, last), e.i64(0))                                     # [N, Tmax]
        self.valid = e.op("Less", e.op("Unsqueeze", pos, e.i64([0])), e.op("Unsqueeze", self.lengths, e.i64([1])))

    def mask(self, x: ir.Value, rank: int) -> ir.Value:
        """Zeros past each sequence's end of a padded [N, Tmax, ...] tensor."""
        valid = self.e.op("Unsqueeze", self.valid, self.e.i64(list(range(2, rank)))) if rank > 2 else self.valid
        return self.e.op("Where", valid, x, self.zero)

    def pad(self, x: ir.Value, rank: int) -> ir.Value:
        """[1, total, ...] -> [N, Tmax, ...]."""
        rows = self.e.op("Gather", self.e.op("Squeeze", x, self.e.i64([0])), self.index, axis=0)
        return self.mask(rows, rank)

    def unpad(self, x: ir.Value) -> ir.Value:
        """[N, Tmax, ...] -> [1, total, ...] (the valid positions in order)."""
        where = self.e.op("Transpose", self.e.op("NonZero", self.valid), perm=[1, 0])
        return self.e.op("Unsqueeze", self.e.op("GatherND", x, where), self.e.i64([0]))


def _fixed_gate(e: NodeEmitter, op: LA.LinearAttentionOp, q: ir.Value, heads: int, dt: str) -> ir.Value | None:
    """Retention's and Lightning's per-head log-decays broadcast to [B, T, H] (None for other ops)."""
    if isinstance(op, LA.Retention):
        decay = np.log1p(-(2.0 ** (-5.0 - np.arange(heads, dtype=np.float64))))
    elif isinstance(op, LA.LightningAttention):
        wide = np.float64 if dt == "float64" else np.float32      # as the kernels: the product in the compute dtype
        decay = wide(-(8 / heads * (1 - op.layer_idx / op.num_layers))) * np.arange(heads, dtype=wide)  # type: ignore[operator]  # numpy's stubs cannot pair a scalar type chosen at run time with its array
    else:
        return None
    table = e.emitter.const(decay.astype(np.float64 if dt == "float64" else np.float32))
    return e.op("Expand", table, e.op("Shape", q, start=0, end=3))


def _step(body: NodeEmitter, op: LA.LinearAttentionOp, state: ir.Value, xs: dict[str, ir.Value],
          scale: ir.Value) -> tuple[ir.Value, ir.Value]:
    """One token: the new state and the output [B, H, V]."""
    q, k, v = xs["q"], xs["k"], xs["v"]
    if "g" in xs:
        decay = body.op("Exp", xs["g"])
        axes = [3] if isinstance(op, LA.GLA) else [2, 3]
        state = body.op("Mul", state, body.op("Unsqueeze", decay, body.i64(axes)))
    if isinstance(op, LA.DeltaRule):
        read = body.op("Squeeze", body.op("MatMul", body.op("Unsqueeze", k, body.i64([2])), state), body.i64([2]))
        v = body.op("Sub", v, read)                                         # u = v - S^T k
        k = body.op("Mul", k, body.op("Unsqueeze", xs["beta"], body.i64([2])))
    outer = body.op("Mul", body.op("Unsqueeze", k, body.i64([3])), body.op("Unsqueeze", v, body.i64([2])))
    state = body.op("Add", state, outer)
    read = body.op("MatMul", body.op("Unsqueeze", body.op("Mul", q, scale), body.i64([2])), state)
    return state, body.op("Squeeze", read, body.i64([2]))


def _scan(e: NodeEmitter, op: LA.LinearAttentionOp, state: ir.Value, seqs: dict[str, ir.Value], scale: ir.Value,
          dt: str, reverse: bool) -> tuple[ir.Value, ir.Value]:
    """Scan the recurrence over time-major ``seqs``; returns (final state, outputs [T, B, H, V])."""
    sub = _Body(e.emitter)
    body = NodeEmitter(sub, f"{e.prefix}/step", [], [])
    elem = ir.TensorType(DTYPES[dt])
    s_in = ir.Value(name=sub.unique(f"{e.prefix}/S"), type=elem)
    xs = {name: ir.Value(name=sub.unique(f"{e.prefix}/{name}_t"), type=elem) for name in seqs}
    s_out, o_t = _step(body, op, s_in, xs, scale)
    graph = ir.Graph([s_in, *xs.values()], [s_out, o_t], nodes=sub.nodes, name=f"{e.prefix}/step")
    n = len(seqs)
    return e.op("Scan", state, *seqs.values(), outputs=2, body=graph, num_scan_inputs=n,
                scan_input_directions=[int(reverse)] * n, scan_output_directions=[int(reverse)])


@lowering(LA.Mamba2Decay)
def _mamba2_decay(e: NodeEmitter, op: LA.Mamba2Decay, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    # -exp(A_log) * softplus(a + dt_bias), softplus as torch's (linear above 20)
    a, a_log, dt_bias = xs
    dt = e.ins[0].dtype
    s = e.op("Add", a, dt_bias)
    soft = e.op("Where", e.op("Greater", s, e.scalar(20.0, dt)), s, e.op("Softplus", s))
    return e.op("Mul", e.op("Neg", e.op("Exp", a_log)), soft)


@lowering(LA.ShortConvolution)
def _short_conv(e: NodeEmitter, op: LA.ShortConvolution, xs: list[ir.Value], params: dict[str, ir.Value]) -> ir.Value:
    # [B, T, C] -> [B, C, T], a depthwise Conv padded by K - 1 on the left only, back, then silu
    channels = int(e.ins[0].shape[2])
    x = e.op("Transpose", xs[0], perm=[0, 2, 1])
    y = e.op("Conv", x, params["weight"], params.get("bias"), kernel_shape=[op.kernel_size],
             pads=[op.kernel_size - 1, 0], group=channels)
    y = e.op("Transpose", y, perm=[0, 2, 1])
    return e.op("Mul", y, e.op("Sigmoid", y)) if op.activation == "silu" else y


def _scanned(e: NodeEmitter, op: LA.LinearAttentionOp, q: ir.Value, k: ir.Value, v: ir.Value,
             gates: dict[str, ir.Value], initial: ir.Value, zeros: ir.Value, scale: ir.Value,
             dt: str) -> tuple[ir.Value, ir.Value]:
    """The recurrence as a Scan over time (every form): (o [B, T, H, V], final state)."""
    seqs = {"q": q, "k": k, "v": v, **gates}
    ranks = {n: 3 if n == "beta" or (n == "g" and not isinstance(op, LA.GLA)) else 4 for n in seqs}
    major = {n: e.op("Transpose", x, perm=[1, 0, *range(2, ranks[n])]) for n, x in seqs.items()}
    state, out = _scan(e, op, initial, major, scale, dt, reverse=False)
    if not op.causal:
        back = dict(major)
        if "g" in back:           # the anti-causal pass decays by the next token's gate (the last token's is 0)
            rank = ranks["g"]
            pads = [0] * rank + [1] + [0] * (rank - 1)
            back["g"] = e.op("Pad", e.op("Slice", major["g"], e.i64([1]), e.i64([INT64_MAX]), e.i64([0])),
                             e.i64(pads))
        _, out_back = _scan(e, op, zeros, back, scale, dt, reverse=True)
        qk = e.op("ReduceSum", e.op("Mul", major["q"], major["k"]), e.i64([-1]), keepdims=1)
        out = e.op("Sub", e.op("Add", out, out_back), e.op("Mul", e.op("Mul", qk, major["v"]), scale))
    return e.op("Transpose", out, perm=[1, 0, 2, 3]), state


def _chunked(e: NodeEmitter, op: LA.LinearAttentionOp, q: ir.Value, k: ir.Value, v: ir.Value,
             gates: dict[str, ir.Value], initial: ir.Value, zeros: ir.Value, scale: ir.Value,
             dt: str) -> tuple[ir.Value, ir.Value]:
    """Causal scalar-gated forms in chunks of CHUNK tokens, all in parallel (CumSum, Trilu masks, MatMul, Exp).

    Inside a chunk: o = ((q k^T) * exp(G_i - G_j) [j <= i]) v, G the cumulative log-decay. Between chunks: the
    state entering chunk n is sum_{m<n} exp(L_excl[n] - L_incl[m]) S_m + exp(L_excl[n]) S_0, with S_m the
    chunk's own k^T v (keys decayed to its end) and L the cumulative chunk decays: one MatMul, no loop.
    Exponents are masked to <= 0 before Exp. Time is zero-padded to a whole number of chunks (zero keys,
    values and gates change nothing) and cut back.
    """
    qt = e.ins[0]
    kd, vd = (int(d) for d in op.state_size(qt.shape[3], e.ins[2].shape[3]))  # type: ignore[arg-type]  # weight widths: ints
    heads = int(qt.shape[2])
    steps = qt.shape[1]
    size = steps if isinstance(steps, int) and 0 < steps <= CHUNK else CHUNK
    length = e.axis_size(q, 1)
    pad = e.op("Mod", e.op("Sub", e.i64([size]), e.op("Mod", length, e.i64([size]))), e.i64([size]))
    amounts = e.op("Concat", e.i64([0]), pad, axis=0)

    def chunks(x: ir.Value, width: int | None) -> ir.Value:
        """[B, T, H(, D)] -> [B, H, Nc, C(, D)]."""
        padded = e.op("Pad", x, amounts, e.scalar(0.0, dt), e.i64([1]))
        if width is None:
            return e.op("Transpose", e.op("Reshape", padded, e.i64([0, -1, size, heads])), perm=[0, 3, 1, 2])
        return e.op("Transpose", e.op("Reshape", padded, e.i64([0, -1, size, heads, width])), perm=[0, 3, 1, 2, 4])

    qc, kc, vc = chunks(e.op("Mul", q, scale), kd), chunks(k, kd), chunks(v, vd)
    tril = e.emitter.const(np.tril(np.ones((size, size), dtype=bool)))
    scores = e.op("MatMul", qc, e.op("Transpose", kc, perm=[0, 1, 2, 4, 3]))            # [B, H, Nc, C, C]
    minus_inf = e.scalar(-math.inf, dt)
    if "g" in gates:
        cum = e.op("CumSum", chunks(gates["g"], None), e.i64(-1))                    # G [B, H, Nc, C]
        diff = e.op("Sub", e.op("Unsqueeze", cum, e.i64([-1])), e.op("Unsqueeze", cum, e.i64([-2])))
        scores = e.op("Mul", scores, e.op("Exp", e.op("Where", tril, diff, minus_inf)))
        last = e.op("Slice", cum, e.i64([-1]), e.i64([INT64_MAX]), e.i64([-1]))      # [B, H, Nc, 1]
        kc = e.op("Mul", kc, e.op("Unsqueeze", e.op("Exp", e.op("Sub", last, cum)), e.i64([-1])))
        qc = e.op("Mul", qc, e.op("Unsqueeze", e.op("Exp", cum), e.i64([-1])))
        decay = e.op("Squeeze", last, e.i64([-1]))                                    # [B, H, Nc]
    else:
        scores = e.op("Where", tril, scores, e.scalar(0.0, dt))
        decay = e.op("ConstantOfShape", e.op("Shape", qc, start=0, end=3),
                     value=ir.tensor(np.zeros(1, dtype=np.dtype(dt))))                 # zeros [B, H, Nc]
    intra = e.op("MatMul", scores, vc)
    own = e.op("MatMul", e.op("Transpose", kc, perm=[0, 1, 2, 4, 3]), vc)               # S_m [B, H, Nc, K, V]
    flat = e.op("Reshape", own, e.i64([0, 0, 0, kd * vd]))
    incl = e.op("CumSum", decay, e.i64(-1))
    excl = e.op("Sub", incl, decay)
    index = e.op("Range", e.i64(0), e.op("Squeeze", e.op("Shape", decay, start=2, end=3), e.i64([0])), e.i64(1))
    earlier = e.op("Less", e.op("Unsqueeze", index, e.i64([0])), e.op("Unsqueeze", index, e.i64([1])))  # m < n
    weights = e.op("Sub", e.op("Unsqueeze", excl, e.i64([-1])), e.op("Unsqueeze", incl, e.i64([-2])))
    weights = e.op("Exp", e.op("Where", earlier, weights, minus_inf))                 # [B, H, Nc, Nc]
    entering = e.op("Reshape", e.op("MatMul", weights, flat), e.i64([0, 0, 0, kd, vd]))
    start = e.op("Mul", e.op("Unsqueeze", e.op("Exp", excl), e.i64([-1, -2])), e.op("Unsqueeze", initial, e.i64([2])))
    entering = e.op("Add", entering, start)
    o = e.op("Add", intra, e.op("MatMul", qc, entering))                                # [B, H, Nc, C, V]
    o = e.op("Reshape", e.op("Transpose", o, perm=[0, 2, 3, 1, 4]), e.i64([0, -1, heads, vd]))
    o = e.op("Slice", o, e.i64([0]), length, e.i64([1]))
    total = e.op("Slice", incl, e.i64([-1]), e.i64([INT64_MAX]), e.i64([-1]))           # [B, H, 1]
    final = e.op("MatMul", e.op("Unsqueeze", e.op("Exp", e.op("Sub", total, incl)), e.i64([-2])), flat)
    final = e.op("Reshape", final, e.i64([0, 0, kd, vd]))
    state = e.op("Add", final, e.op("Mul", e.op("Unsqueeze", e.op("Exp", total), e.i64([-1])), initial))
    return o, state


@lowering(*(op for op in LA.OPS if issubclass(op, LA.LinearAttentionOp)))
def _linear_attention(e: NodeEmitter, op: LA.LinearAttentionOp, xs: list[ir.Value],
                      params: dict[str, ir.Value]) -> ir.Value | tuple[ir.Value, ...]:
    names = op.input_names()
    by, types = dict(zip(names, xs, strict=True)), dict(zip(names, e.ins, strict=True))
    qt, vt = types["q"], types["v"]
    dt = "float64" if qt.dtype == "float64" else "float32"
    width = qt.shape[3]
    if not isinstance(width, int) and op.scale is None:
        raise ValueError(f"the default scale 1/sqrt(K) needs a known key size, got {qt}")
    scale = e.scalar(op.scale if op.scale is not None else width ** -0.5, dt)
    q, k, v = (_cast(e, by[n], types[n].dtype, dt) for n in ("q", "k", "v"))
    gates = {n: _cast(e, by[n], types[n].dtype, dt) for n, _ in op.gates}
    fixed = _fixed_gate(e, op, q, int(qt.shape[2]), dt)
    if fixed is not None:
        gates["g"] = fixed
    pack = _Packing(e, by["cu_seqlens"], q, dt) if op.varlen else None
    if pack is not None:
        q, k, v = pack.pad(q, 4), pack.pad(k, 4), pack.pad(v, 4)
        gates = {n: pack.pad(x, 4 if n == "g" and isinstance(op, LA.GLA) else 3) for n, x in gates.items()}
    if isinstance(op, LA.DeltaRule) and op.qk_l2norm:      # F.normalize(x, dim=-1, eps=1e-6), as the kernels
        q, k = (e.op("Div", x, e.op("Max", e.op("ReduceL2", x, e.i64([-1]), keepdims=1), e.scalar(1e-6, dt)))
                for x in (q, k))
    if isinstance(op, LA.LinearAttention):
        lengths = pack.lengths if pack is not None else None
        q, k = _feature_map(e, op, q, dt, lengths), _feature_map(e, op, k, dt, lengths)
        if op.normalize:          # a ones column: the last output column is the normaliser q . sum(k)
            v = e.op("Pad", v, e.i64([0, 1]), e.scalar(1.0, dt), e.i64([3]))
            v = pack.mask(v, 4) if pack is not None else v
    zeros_shape = e.op("Concat", e.axis_size(q, 0), e.op("Shape", q, start=2, end=4), e.axis_size(v, 3), axis=0)
    zeros = e.op("ConstantOfShape", zeros_shape, value=ir.tensor(np.zeros(1, dtype=np.dtype(dt))))
    initial = _cast(e, by["initial_state"], types["initial_state"].dtype, dt) if op.has_initial_state else zeros
    chunked = op.causal and pack is None and not isinstance(op, (LA.GLA, LA.DeltaRule))
    run = _chunked if chunked else _scanned
    o, state = run(e, op, q, k, v, gates, initial, zeros, scale, dt)
    if isinstance(op, LA.LinearAttention) and op.normalize:
        body = e.op("Slice", o, e.i64([0]), e.i64([-1]), e.i64([3]))
        norm = e.op("Slice", o, e.i64([-1]), e.i64([INT64_MAX]), e.i64([3]))
        o = e.op("Div", body, e.op("Add", norm, e.scalar(op.eps, dt)))
    if pack is not None:
        o = pack.unpad(o)
    o = _cast(e, o, dt, vt.dtype)
    return (o, state) if op.output_final_state else o
