"""Hypothesis strategies of random, well-typed specs for testing rewrites (yours and archdsl's).

Each strategy draws a :class:`SpecCase`: the .arch text of one model, the symbolic input sizes to run it at
(odd and even, so border pixels and stride parity are covered), and what a rewrite is expected to do.
Every generated spec compiles; the strategies only combine shapes that agree.

    from hypothesis import given
    from archdsl.testing.strategies import reparam_blocks

    @given(reparam_blocks())
    def test_my_pass(case): ...
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

SIZES = ({"N": 2, "H": 7, "W": 8}, {"N": 1, "H": 8, "W": 5})


@dataclass(frozen=True)
class SpecCase:
    """A generated spec, the sizes to run it at, and a description for failure messages."""

    text: str
    sizes: tuple[dict[str, int], ...] = SIZES
    notes: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        return self.text


def _model(body: list[str], channels: int, name: str = "Case", concrete: tuple[int, int] | None = None) -> str:
    h, w = concrete if concrete else ("H", "W")
    lines = [f"model {name}() {{", f"  in x: [N, {channels}, {h}, {w}]", *(f"  {line}" for line in body), "}"]
    return "\n".join(lines) + "\n"


@st.composite
def conv_branch(draw, channels: int, out: int, stride: int, groups: int, same: bool = False) -> str:
    """One affine branch from [N, channels, H, W] to [N, out, H', W'], as a layer expression."""
    kinds = ["conv", "conv", "asym", "dbb", "expand"]
    if out == channels:
        kinds += ["pool", "scaled"]
    if same:
        kinds = ["conv"]
    kind = draw(st.sampled_from(kinds))
    k = draw(st.sampled_from((1, 3, 5)))
    bias = draw(st.booleans())
    bn = draw(st.booleans())
    pad = '"same"' if same else None
    tail = ", BatchNorm2d()" if bn else ""
    if kind == "conv":
        d = draw(st.sampled_from((1, 1, 2))) if k > 1 else 1
        p = pad or str(d * (k // 2))
        return (f"seq[Conv2d({out}, {k}, stride={stride}, padding={p}, dilation={d}, groups={groups}, "
                f"bias={str(bias).lower()}){tail}]")
    if kind == "asym":                          # ACNet's 1xk / kx1
        k = max(k, 3)
        shape, p = draw(st.sampled_from((((1, k), (0, k // 2)), ((k, 1), (k // 2, 0)))))
        return (f"seq[Conv2d({out}, {shape}, stride={stride}, padding={p}, groups={groups}, "
                f"bias={str(bias).lower()}){tail}]")
    if kind == "dbb":                           # DBB's 1x1 -> kxk: the 1x1 has no bias, so padding can move
        mid = groups * draw(st.sampled_from((1, 2)))
        return (f"seq[Conv2d({mid}, 1, groups={groups}, bias=false), Conv2d({out}, {k}, stride={stride}, "
                f"padding={k // 2}, groups={groups}, bias={str(bias).lower()}){tail}]")
    if kind == "expand":                        # SESR's kxk expansion -> 1x1 projection
        mid = groups * draw(st.sampled_from((2, 4)))
        return (f"seq[Conv2d({mid}, {k}, stride={stride}, padding={k // 2}, groups={groups}, "
                f"bias={str(bias).lower()}), Conv2d({out}, 1, bias={str(draw(st.booleans())).lower()}){tail}]")
    if kind == "pool":                          # average pooling with count_include_pad is a constant kernel
        k = max(k, 3)
        return f"seq[AvgPool2d({k}, stride={stride}, padding={k // 2}){tail}]"
    scale = draw(st.sampled_from((0.5, -1.5, 2.0)))
    return f"seq[Conv2d({out}, 3, stride={stride}, padding=1, groups={groups}), LayerScale({scale}, dim=1)]"


@st.composite
def reparam_blocks(draw, relu: bool | None = None) -> SpecCase:
    """A model whose body is one ``reparam { }`` block of 2-4 affine branches (plus identities when allowed)."""
    c = draw(st.sampled_from((2, 4)))
    groups = draw(st.sampled_from((1, 2, c)))
    out = c if groups == c else draw(st.sampled_from((c, 2 * c)))
    same = draw(st.integers(0, 5)) == 0
    stride = 2 if same else draw(st.sampled_from((1, 2)))
    n = draw(st.integers(2, 4))
    branches = [f"b{i} = {draw(conv_branch(c, out, stride, groups, same))}" for i in range(n)]
    if out == c and stride == 1 and draw(st.booleans()):
        branches.append(f"b{n} = {draw(st.sampled_from(('identity', 'BatchNorm2d()')))}")
    act = draw(st.booleans()) if relu is None else relu
    body = ["out relu(x |> reparam {" if act else "out x |> reparam {", *(f"  {b}" for b in branches),
            "})" if act else "}"]
    concrete = draw(st.sampled_from(((9, 10), (10, 7)))) if same else None
    sizes = ({"N": 2},) if same else SIZES
    return SpecCase(_model(body, c, concrete=concrete), sizes, (f"groups={groups}", f"stride={stride}"))


@st.composite
def bn_folds(draw) -> SpecCase:
    """A weighted layer next to a BatchNorm: conv/linear/transposed conv then BN, or BN then conv/linear."""
    c = draw(st.sampled_from((2, 4)))
    kind = draw(st.sampled_from(("conv_bn", "conv_bn", "convt_bn", "linear_bn", "bn_conv", "bn_linear")))
    groups = draw(st.sampled_from((1, 2)))
    k = draw(st.sampled_from((1, 3)))
    stride = draw(st.sampled_from((1, 2)))
    bias = str(draw(st.booleans())).lower()
    if kind == "conv_bn":
        mode = draw(st.sampled_from(("zeros", "reflect", "circular")))
        body = [f"conv = Conv2d({2 * c}, {k}, stride={stride}, padding={k // 2}, groups={groups}, bias={bias}, "
                f"padding_mode=\"{mode}\")", "bn = BatchNorm2d()", "out x |> conv |> bn |> relu"]
    elif kind == "convt_bn":
        body = [f"up = ConvTranspose2d({2 * c}, {k + 1}, stride={stride}, padding={k // 2}, groups={groups}, "
                f"bias={bias})", "bn = BatchNorm2d()", "out x |> up |> bn"]
    elif kind == "bn_conv":
        pad, mode = draw(st.sampled_from(((0, "zeros"), (1, "zeros"), (1, "replicate"), (1, "reflect"))))
        body = ["bn = BatchNorm2d()", f"conv = Conv2d({2 * c}, 3, stride={stride}, padding={pad}, groups={groups}, "
                f"bias={bias}, padding_mode=\"{mode}\")", "out x |> bn |> conv"]
    else:
        first, second = ("fc = Linear(5, bias=" + bias + ")", "bn = BatchNorm1d()")
        order = "fc |> bn" if kind == "linear_bn" else "bn |> fc"
        body = [first, second, f"out x |> AdaptiveAvgPool2d(1) |> flatten |> {order} |> tanh"]
    return SpecCase(_model(body, c), SIZES, (kind,))


_AXES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


def _window_out(size: int, k: int, s: int, d: int, pads: tuple[int, int]) -> int:
    return (size + pads[0] + pads[1] - d * (k - 1) - 1) // s + 1


def _chain_sizes(windows: list[tuple], n: int) -> tuple[dict[str, int], ...]:
    """Two size sets (odd and even per axis, batch 2 and 1) at which every window of the chain fits."""
    base = []
    for axis in range(n):
        size = 8
        while True:
            h = size
            for k, s, d, pads in windows:
                h = _window_out(h, k[axis], s[axis], d, pads[axis])
                if h < 1:
                    break
            if h >= 2:
                break
            size += 1
        base.append(size)
    names = _AXES[n]
    first = {"N": 2, **{a: b + i % 2 for i, (a, b) in enumerate(zip(names, base, strict=True))}}
    second = {"N": 1, **{a: b + 3 - i % 2 for i, (a, b) in enumerate(zip(names, base, strict=True))}}
    return first, second


@st.composite
def linear_chains(draw, exact: bool | None = None, spatial: int | None = None, training: bool = False) -> SpecCase:
    """A model whose body is a chain of 2-4 affine ops with no nonlinearity between them.

    Convolutions (kernels 1-7 per axis, strides 1-2, dilations 1-2, groups dividing the channels, biases
    mostly on), BatchNorm, LayerScale, average pooling and explicit pads, on 1-3 spatial dims; or Linear
    and BatchNorm1d on [N, C]. With ``exact`` only the first op pads (so the whole chain composes into one
    op exactly: the note ``exact``); otherwise later ops may pad too, and only some segments can collapse.
    ``training``: affine in training mode too (no BatchNorm) and stride 1 (training-time collapse).
    """
    exact = draw(st.booleans()) if exact is None else exact
    n = draw(st.sampled_from((0, 1, 2, 2, 2, 3))) if spatial is None else spatial
    c = draw(st.sampled_from((2, 3, 4)))
    length = draw(st.integers(2, 4))
    bn = {0: "BatchNorm1d()", 1: "BatchNorm1d()", 2: "BatchNorm2d()", 3: "BatchNorm3d()"}[n]
    ops, windows, channels = [], [], c
    for i in range(length):
        kinds = ("conv", "conv", "conv", "bn", "scale", "pool", "pad") if n in (1, 2) else \
            ("conv", "conv", "bn", "scale", "pad") if n else ("linear", "linear", "bn")
        kind = draw(st.sampled_from([k for k in kinds if not (training and k == "bn")]))
        if kind == "linear":
            out = draw(st.integers(1, 6))
            ops.append(f"Linear({out}, bias={str(draw(st.integers(0, 3)) > 0).lower()})")
            channels = out
        elif kind in ("bn", "scale"):
            ops.append(bn if kind == "bn" else f"LayerScale({draw(st.sampled_from((0.5, -1.5, 2.0)))}, dim=1)")
        else:
            padded = i == 0 or not exact and draw(st.booleans())
            big = 3 if n == 3 else 7
            k = tuple(draw(st.integers(1, big)) for _ in range(n)) if kind == "conv" else \
                tuple(draw(st.integers(2, 3)) for _ in range(n))
            if kind == "pad":
                k = (1,) * n
            s = tuple(draw(st.integers(1, 2)) for _ in range(n)) if kind != "pad" and not training else (1,) * n
            d = draw(st.integers(1, 2)) if kind == "conv" else 1
            pads = tuple((draw(st.integers(0, max(kk - 1, 0 if kind != "pad" else 2))),
                          draw(st.integers(0, max(kk - 1, 0 if kind != "pad" else 2)))) if padded else (0, 0)
                         for kk in k)
            if kind == "pool":
                pads = tuple((min(a, kk // 2),) * 2 for (a, _), kk in zip(pads, k, strict=True))
                p = tuple(a for a, _ in pads)
                ops.append(f"AvgPool{n}d({k}, stride={s}, padding={p})")
            elif kind == "pad":
                flat = tuple(x for pair in reversed(pads) for x in pair)
                mode = draw(st.sampled_from(("constant", "constant", "reflect", "replicate"))) if i == 0 \
                    else "constant"                  # reflect needs pads smaller than a (small) intermediate
                ops.append(f"pad({flat}, \"{mode}\")")
            else:
                g = draw(st.sampled_from([g for g in (1, 2, 3, 4) if channels % g == 0]))
                out = g * draw(st.integers(1, max(1, 6 // g)))
                mode = draw(st.sampled_from(("zeros", "zeros", "reflect", "replicate", "circular"))) if i == 0 \
                    else "zeros"
                bias = str(draw(st.integers(0, 3)) > 0).lower()
                ops.append(f"Conv{n}d({out}, {k}, stride={s}, padding={pads}, dilation={d}, groups={g}, "
                           f"bias={bias}, padding_mode=\"{mode}\")")
                channels = out
            windows.append((k, s, d, pads))
    shape = ", ".join(("N", str(c), *_AXES.get(n, ())))
    layers = ", ".join(f"l{i}: {op}" for i, op in enumerate(ops))
    lines = ["model Chain() {", f"  in x: [{shape}]", f"  out x |> seq{{{layers}}}", "}"]
    sizes = _chain_sizes(windows, n) if n else ({"N": 3}, {"N": 1})
    return SpecCase("\n".join(lines) + "\n", sizes, ("exact",) if exact else ())
