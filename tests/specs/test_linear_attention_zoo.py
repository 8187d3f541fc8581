"""The linear-attention zoo (specs/linear_attention_lm.arch, specs/linear_attention_vision.arch): parameter
counts from the layers' definitions, fla's parameter names, forward equal to plain-PyTorch references written
here (token-by-token recurrences, quadratic forms; float64), ONNX parity at tiny sizes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from archdsl import zoo
from tests.specs.reference_models import compiled, relative_error

LMS = ["linear_transformer_lm", "retnet_lm", "gla_lm", "deltanet_lm", "gated_deltanet_lm"]
VISION = ["cosformer_deit_tiny", "flatten_deit_tiny", "vig_deit_tiny"]
TINY = {"vocab_size": 37, "hidden_size": 16, "num_layers": 2, "num_heads": 2}
TINY_EXTRA = {"gated_deltanet_lm": {"head_dim": 8}}


def tiny(name: str) -> dict:
    return TINY | TINY_EXTRA.get(name, {})


# ---- parameter counts, from fla's layer definitions -------------------------------------------------------
def mlp_width(d: int, ratio: int) -> int:
    """fla's GatedMLP default: 2/3 * ratio * d rounded up to a multiple of 256."""
    return 256 * math.ceil(int(d * ratio * 2 / 3) / 256)


def mixer_params(name: str, d: int, h: int, head_dim: int = 0) -> int:
    if name == "linear_transformer_lm":           # q, k, v, o: d x d, no biases
        return 4 * d * d
    if name == "retnet_lm":                       # k = d, v = 2d; q, k, v, g, o; per-head norm of 2d/h
        return 2 * d * d + 2 * d * 2 * d + 2 * d * d + 2 * d // h
    if name == "gla_lm":                          # k = d/2, v = d; q, k, v, g, o; gk: d->16->d/2 (+bias); norm
        return 2 * d * (d // 2) + 3 * d * d + d * 16 + 16 * (d // 2) + d // 2 + d // h
    if name == "deltanet_lm":                     # q, k, v, o; b_proj d->h; three short convs (K=4); norm
        return 4 * d * d + d * h + 3 * 4 * d + d // h
    kd, vd = h * head_dim, h * 2 * head_dim       # gated deltanet: k = h*hd, v = h*2hd
    return 2 * d * kd + 2 * d * vd + vd * d + 2 * d * h + 2 * h + 4 * (2 * kd + vd) + 2 * head_dim


def lm_params(name: str, vocab: int = 32000, d: int = 1024, layers: int = 24, h: int = 4, head_dim: int = 256) -> int:
    ratio = 2 if name == "retnet_lm" else 4
    block = mixer_params(name, d, h, head_dim) + 3 * d * mlp_width(d, ratio) + 2 * d
    return 2 * vocab * d + layers * block + d


DEFAULTS = {"linear_transformer_lm": {"h": 8}, "retnet_lm": {}, "gla_lm": {}, "deltanet_lm": {"h": 8},
            "gated_deltanet_lm": {"layers": 21}}


@pytest.mark.parametrize("name", LMS)
def test_lm_parameter_counts(name):
    assert compiled(name).num_params() == lm_params(name, **DEFAULTS[name])
    small = zoo.compile(name, **tiny(name))
    assert small.num_params() == lm_params(name, 37, 16, 2, 2, 8)


def test_vision_parameter_counts():
    d, depth, mlp, tokens = 192, 12, 768, 14 * 14 + 1
    # DeiT-Tiny without the qkv and proj biases: patches, class token, positions, blocks, final norm, head
    base = 3 * 16 * 16 * d + d + d + tokens * d + depth * (4 * d + 4 * d * d + 2 * d * mlp + mlp + d) + 2 * d \
        + d * 1000 + 1000
    assert base == 5_717_416 - depth * (3 * d + d)         # timm's deit_tiny_patch16_224 minus those biases
    assert compiled("cosformer_deit_tiny").num_params() == compiled("flatten_deit_tiny").num_params() == base
    gla = 2 * d * (d // 2) + 3 * d * d + d * 16 + 16 * (d // 2) + d // 2 + d // 3 - 4 * d * d
    assert compiled("vig_deit_tiny").num_params() == base + depth * gla


def test_lm_names_follow_fla():
    keys = set(zoo.build("gated_deltanet_lm", seed=0, **tiny("gated_deltanet_lm")).state_dict())
    layer = {k.removeprefix("model.layers.1.") for k in keys if k.startswith("model.layers.1.")}
    assert layer == {"attn_norm.weight", "mlp_norm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                     "mlp.down_proj.weight", *(f"attn.{p}.weight" for p in (
                         "q_proj", "k_proj", "v_proj", "a_proj", "b_proj", "g_proj", "o_proj", "q_conv1d",
                         "k_conv1d", "v_conv1d", "o_norm")), "attn.A_log", "attn.dt_bias"}
    assert {"model.embeddings.weight", "model.norm.weight", "lm_head.weight"} <= keys
    gla = set(zoo.build("gla_lm", seed=0, **TINY).state_dict())
    assert {"model.layers.0.attn.gk_proj.0.weight", "model.layers.0.attn.gk_proj.1.bias",
            "model.layers.0.attn.g_norm_swish_gate.weight"} <= gla


# ---- plain-PyTorch references ----------------------------------------------------------------------------
def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def heads(x, h):
    return x.unflatten(-1, (h, -1))


def short_conv(x, w):
    """Causal depthwise conv over time on [B, T, C] with silu."""
    return F.silu(F.conv1d(F.pad(x.transpose(1, 2), (w.shape[-1] - 1, 0)), w, groups=x.shape[-1]).transpose(1, 2))


def recurrence(q, k, v, update):
    """o[t] = q[t]^T S[t] with S[t] = update(S[t-1], t) on [B, T, H, *]."""
    b, t, h, kd = q.shape
    state = q.new_zeros(b, h, kd, v.shape[-1])
    outs = []
    for i in range(t):
        state = update(state, i)
        outs.append((q[:, i].unsqueeze(-2) @ state).squeeze(-2))
    return torch.stack(outs, 1)


def rope(x, base=10000.0):
    """fla's RotaryEmbedding (RetNet's q and k): pairs (i, i + d/2) turned by t * base^(-2i/d), t from 0."""
    d = x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=x.dtype) / d)
    angle = (torch.arange(x.shape[1], dtype=x.dtype)[:, None] * theta)[None, :, None, :]
    x1, x2 = x.chunk(2, -1)
    return torch.cat([x1 * angle.cos() - x2 * angle.sin(), x2 * angle.cos() + x1 * angle.sin()], -1)


def outer(k, v):
    return k.unsqueeze(-1) * v.unsqueeze(-2)


def mixer(name, p, x, h, eps=1e-6):
    lin = lambda n, y=x: F.linear(y, p[f"{n}.weight"], p.get(f"{n}.bias"))    # noqa: E731
    if name == "deltanet_lm" or name == "gated_deltanet_lm":
        q, k, v = (heads(short_conv(lin(f"{n}_proj"), p[f"{n}_conv1d.weight"]), h) for n in "qkv")
        q, k = F.normalize(q, dim=-1, eps=1e-6), F.normalize(k, dim=-1, eps=1e-6)
    else:
        q, k, v = (heads(lin(f"{n}_proj"), h) for n in "qkv")
    scale = q.shape[-1] ** -0.5
    if name == "linear_transformer_lm":
        q, k = F.elu(q) + 1, F.elu(k) + 1
        num = recurrence(q, k, v, lambda s, t: s + outer(k[:, t], v[:, t])) * scale
        den = (q * k.cumsum(1)).sum(-1, keepdim=True) * scale
        return lin("o_proj", (num / (den + 1e-6)).flatten(2))
    if name == "retnet_lm":
        q, k = rope(q), rope(k)
        gamma = (1 - 2.0 ** (-5.0 - torch.arange(h, dtype=x.dtype)))[:, None, None]
        o = recurrence(q, k, v, lambda s, t: gamma * s + outer(k[:, t], v[:, t])) * scale
        o = rms(o, p["g_norm_swish_gate.weight"], eps) * F.silu(heads(lin("g_proj"), h))
    elif name == "gla_lm":
        gk = heads(F.logsigmoid(lin("gk_proj.1", lin("gk_proj.0"))) / 16, h)
        o = recurrence(q, k, v, lambda s, t: gk[:, t].exp().unsqueeze(-1) * s + outer(k[:, t], v[:, t])) * scale
        o = rms(o, p["g_norm_swish_gate.weight"], eps) * F.silu(heads(lin("g_proj"), h))
    else:
        beta = torch.sigmoid(lin("b_proj"))
        g = -p["A_log"].exp() * F.softplus(lin("a_proj") + p["dt_bias"]) if "A_log" in p else torch.zeros_like(beta)

        def delta(s, t):
            s = g[:, t].exp()[..., None, None] * s
            u = v[:, t] - (k[:, t].unsqueeze(-2) @ s).squeeze(-2)
            return s + outer(beta[:, t].unsqueeze(-1) * k[:, t], u)

        o = rms(recurrence(q, k, v, delta) * scale, p["o_norm.weight"], eps)
        if "g_proj.weight" in p:
            o = o * F.silu(heads(lin("g_proj"), h))
    return lin("o_proj", o.flatten(2))


def sub(state, prefix):
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def lm_reference(name, state, ids, h, layers):
    x = F.embedding(ids, state["model.embeddings.weight"])
    for i in range(layers):
        p = sub(state, f"model.layers.{i}.")
        x = x + mixer(name, sub(p, "attn."), rms(x, p["attn_norm.weight"], 1e-6), h)
        y = rms(x, p["mlp_norm.weight"], 1e-6)
        m = sub(p, "mlp.")
        x = x + F.linear(F.silu(F.linear(y, m["gate_proj.weight"])) * F.linear(y, m["up_proj.weight"]),
                         m["down_proj.weight"])
    return F.linear(rms(x, state["model.norm.weight"], 1e-6), state["lm_head.weight"])


def randomised(module, seed=0):
    """The module in float64 with every parameter redrawn (norm weights away from one, decays varied)."""
    gen = torch.Generator().manual_seed(seed)
    module = module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5 + (1.0 if p.ndim == 1 else 0.0))
    return module


@pytest.mark.parametrize("name", LMS)
def test_lm_forward_equals_plain_pytorch(name):
    module = randomised(zoo.build(name, seed=0, **tiny(name)))
    ids = torch.randint(0, 37, (2, 11), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref, out = lm_reference(name, module.state_dict(), ids, 2, 2), module(ids)
    assert relative_error(ref, out) < 1e-12


# ---- vision: the bidirectional mixers as quadratic forms ----------------------------------------------------
def quadratic_attention(kind, p, x, h):
    lin = lambda n, y=x: F.linear(y, p[f"{n}.weight"], p.get(f"{n}.bias"))    # noqa: E731
    q, k, v = (heads(lin(f"{n}_proj"), h).transpose(1, 2) for n in "qkv")      # [B, H, T, D]
    scale, t = q.shape[-1] ** -0.5, q.shape[2]
    if kind == "vig_deit_tiny":
        gk = heads(F.logsigmoid(lin("gk_proj.1", lin("gk_proj.0"))) / 16, h).transpose(1, 2).cumsum(2)
        gap = (gk.unsqueeze(3) - gk.unsqueeze(2)).abs()                          # |G[t] - G[s]| per channel
        scores = (q.unsqueeze(3) * k.unsqueeze(2) * (-gap).exp()).sum(-1) * scale
        o = rms((scores @ v).transpose(1, 2), p["g_norm_swish_gate.weight"], 1e-5)
        return lin("o_proj", (o * F.silu(heads(lin("g_proj"), h))).flatten(2))
    if kind == "cosformer_deit_tiny":
        angle = (math.pi / 2) * torch.arange(1, t + 1, dtype=x.dtype) / t
        fm = lambda z: torch.cat([F.relu(z) * angle.cos()[:, None], F.relu(z) * angle.sin()[:, None]], -1)  # noqa: E731
    else:
        def fm(z):
            r = F.relu(z) + 1e-6
            return r ** 3 * r.norm(dim=-1, keepdim=True) / (r ** 3).norm(dim=-1, keepdim=True)
    q, k = fm(q), fm(k)
    scores = q @ k.transpose(-1, -2) * scale
    o = (scores @ v) / (scores.sum(-1, keepdim=True) + 1e-6)
    return lin("o_proj", o.transpose(1, 2).flatten(2))


def vit_reference(kind, state, image):
    x = F.conv2d(image, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=16)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([state["cls_token"].expand(x.shape[0], -1, -1), x], 1) + state["pos_embed"]
    ln = lambda y, n: F.layer_norm(y, y.shape[-1:], state[f"{n}.weight"], state[f"{n}.bias"], 1e-6)  # noqa: E731
    for i in range(2):
        b = f"blocks.{i}."
        x = x + quadratic_attention(kind, sub(state, b + "attn."), ln(x, b + "norm1"), 3)
        y = ln(x, b + "norm2")
        y = F.linear(F.gelu(F.linear(y, state[b + "mlp.fc1.weight"], state[b + "mlp.fc1.bias"])),
                     state[b + "mlp.fc2.weight"], state[b + "mlp.fc2.bias"])
        x = x + y
    return F.linear(ln(x, "norm")[:, 0], state["head.weight"], state["head.bias"])


@pytest.mark.parametrize("name", VISION)
def test_vision_forward_equals_quadratic_reference(name):
    module = randomised(zoo.build(name, seed=0, image_size=48, num_classes=5))
    with torch.no_grad():                     # blocks 2.. add nothing (x + 0 + 0): the reference runs two
        for block in list(module.blocks.children())[2:]:
            for p in block.parameters():
                p.zero_()
    image = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        ref, out = vit_reference(name, module.state_dict(), image), module(image)
    assert relative_error(ref, out) < 1e-10


# ---- ONNX -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", LMS + VISION)
def test_onnx_export_equals_torch(name):
    pytest.importorskip("onnxruntime")
    from archdsl.backends.onnx.parity import onnx_parity

    params = tiny(name) if name in LMS else {"image_size": 32, "num_classes": 5}
    sizes = {"B": 2, "T": 70} if name in LMS else {"N": 2}
    report = onnx_parity(zoo.compile(name, **params), sizes=sizes)
    assert report.ok, str(report)
