"""The re-parameterisable zoo models (FastViT-T8/SA12, RepViT-M0.9, RepVGG-A0, MobileOne-S0) against timm's facts.

Without timm: the training forms have exactly timm's state_dict (``tests/data/state_dicts``); every conv that
timm's ``reparameterize_model`` creates (``tests/data/deploy_keys``) is one outermost ``reparam`` block of the
spec, at the same module path, and no other block is marked; each re-param block computes what timm's
training-time ``forward`` computes and is an affine map of its input in eval mode (so it can be merged).
With timm (marker ``reference``): timm's weights load with ``strict=True`` and give the same outputs, with
non-trivial BatchNorm statistics and layer scales, and the data files equal what timm produces today.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import archdsl
from archdsl import zoo
from tests.specs.reference_models import compiled, meta_module, module_listing

DATA = Path(__file__).resolve().parents[1] / "data"
TRAIN_LISTED = ("fastvit_t8", "fastvit_sa12", "repvit_m0_9")
DEPLOY = ("fastvit_t8", "fastvit_sa12", "repvit_m0_9", "repvgg_a0", "mobileone_s0")
# Where timm puts the conv it merges a re-param block into: MobileOne-style blocks get a `reparam_conv` child;
# RepViT's RepVggDw is replaced by the fused conv itself (its conv-BN containers and head are fused too, but
# those are BatchNorm folds, not re-param blocks).
MERGED_CONV = {"fastvit_t8": r"(.*)\.reparam_conv\.weight", "fastvit_sa12": r"(.*)\.reparam_conv\.weight",
               "repvgg_a0": r"(.*)\.reparam_conv\.weight",
               "mobileone_s0": r"(.*)\.reparam_conv\.weight", "repvit_m0_9": r"(.*\.token_mixer)\.weight"}


def listing(name: str) -> tuple[int, int, dict[str, tuple[str, tuple[int, ...]]]]:
    """(parameters, entries, key -> (dtype, shape)) from tests/data/state_dicts/<name>.txt."""
    header, *lines = (DATA / "state_dicts" / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    counts = re.search(r"(\d+) parameters, (\d+) state_dict entries", header)
    assert counts is not None, header
    items = {}
    for line in filter(None, lines):
        key, dtype, shape = line.split(" ", 2)
        items[key] = (dtype, tuple(int(d) for d in re.findall(r"\d+", shape)))
    return int(counts.group(1)), int(counts.group(2)), items


def deploy_facts(name: str) -> dict:
    """tests/data/deploy_keys/<name>.json: timm's deploy form (parameter count, state_dict keys and shapes)."""
    return json.loads((DATA / "deploy_keys" / f"{name}.json").read_text(encoding="utf-8"))


def reparam_locations(name: str) -> set[str]:
    """Module paths of the outermost `reparam` blocks (a block nested in another one merges into it).

    A MobileOne block whose only present branch is its list of k x k branches (a 1x1 block that changes the
    width) has no sum of its own: its one tagged sum is the list's, at `<block>.conv_kxk`, and the merged conv
    belongs to the block.
    """
    places = {n.module or ".".join(n.scope) for n in compiled(name).nodes if "reparam" in n.tags}
    places = {p.removesuffix(".conv_kxk") for p in places}
    return {p for p in places if not any(p.startswith(q + ".") for q in places)}


@pytest.mark.parametrize("name", TRAIN_LISTED)
def test_training_form_state_dict_equals_timm_listing(name: str) -> None:
    params, entries, ref = listing(name)
    ours = module_listing(meta_module(name))
    assert sorted(set(ref) - set(ours)) == [], "keys missing from the zoo model"
    assert sorted(set(ours) - set(ref)) == [], "keys timm does not have"
    assert {k: v for k, v in ours.items() if v != ref[k]} == {}, "dtype or shape differs (ours shown)"
    assert len(ours) == entries
    assert compiled(name).num_params() == params


@pytest.mark.parametrize("name", DEPLOY)
def test_every_conv_timm_merges_is_one_reparam_block_of_the_spec(name: str) -> None:
    facts = deploy_facts(name)
    assert facts["train_params"] == compiled(name).num_params()
    merged = {m.group(1) for k in facts["state_dict"] if (m := re.fullmatch(MERGED_CONV[name], k))}
    assert merged, "no merged conv in the deploy facts"
    assert sorted(reparam_locations(name) - merged) == [], "reparam blocks that timm does not merge"
    assert sorted(merged - reparam_locations(name)) == [], "convs timm merges from branches not marked reparam"


@pytest.mark.parametrize("name", DEPLOY)
def test_deploy_facts_are_consistent(name: str) -> None:
    """The deploy form keeps every parameter it does not merge, under the training form's name and shape."""
    facts = deploy_facts(name)
    ours = {k: (p.dtype, tuple(p.shape)) for k, p in compiled(name).params.items()}
    kept = {k: (d, tuple(s)) for k, (d, s) in facts["state_dict"].items() if k in ours}
    assert {k: v for k, v in kept.items() if v != ours[k]} == {}
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    numel = sum(torch.Size(s).numel() for k, (_, s) in facts["state_dict"].items() if not k.endswith(buffers))
    assert numel == facts["params"] < facts["train_params"]
    assert len(facts["state_dict"]) == facts["entries"]


# -- the re-param blocks on their own: timm's training-time forward, and affine in eval mode ------------------

FASTVIT = zoo.spec_path("fastvit_t8")
REPVIT = zoo.spec_path("repvit_m0_9")
BLOCKS = {
    "RepMixer": (FASTVIT, 'RepMixer(3, "constant(value=1e-05)")', 6),
    "MobileOneBlock": (FASTVIT, "MobileOneBlock(6, 3, groups=6, act=none)", 6),
    "MobileOneBlock_stride2": (FASTVIT, "MobileOneBlock(6, 3, stride=2, groups=6, act=none)", 6),
    "ReparamLargeKernelConv": (FASTVIT, "ReparamLargeKernelConv(12, 7, 2, 6, 3)", 6),
    "RepConditionalPosEnc": (FASTVIT, "RepConditionalPosEnc()", 6),
    "RepVggDw": (REPVIT, "RepVggDw(3)", 6),
}


def block_module(key: str, seed: int = 0) -> nn.Module:
    """One block of a zoo spec as a model named `m`, applied at `b`, with random weights and BN statistics."""
    path, call, channels = BLOCKS[key]
    spec = (f'import "{path}"\nmodel m() {{\n  "one block"\n  in x: [N, {channels}, H, W]\n  b = {call}\n'
            f"  out x |> b\n}}\n")
    module = archdsl.build(spec, seed=seed).double().eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, t in module.state_dict().items():
            if k.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen, dtype=t.dtype))
            elif t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=gen, dtype=t.dtype) * 0.5 + (1.0 if k.endswith("weight") and
                                                                                  t.dim() == 1 else 0.0))
    return module


def bn(sd: dict, prefix: str, x: torch.Tensor) -> torch.Tensor:
    return nn.functional.batch_norm(x, sd[f"{prefix}.running_mean"], sd[f"{prefix}.running_var"],
                                    sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], False, 0.0, 1e-5)


def conv_bn(sd: dict, prefix: str, x: torch.Tensor, conv: str = "conv", norm: str = "bn", stride: int = 1,
            groups: int = 1) -> torch.Tensor:
    w = sd[f"{prefix}.{conv}.weight"]
    y = nn.functional.conv2d(x, w, stride=stride, padding=w.shape[-1] // 2, groups=groups)
    return bn(sd, f"{prefix}.{norm}", y)


def timm_forward(key: str, sd: dict, x: torch.Tensor) -> torch.Tensor:
    """The training-time forward of timm's module (timm.models.fastvit / repvit), from a state_dict."""
    if key == "RepMixer":   # x + layer_scale(mixer(x) - norm(x))
        mixer = bn(sd, "b.mixer.identity", x) + conv_bn(sd, "b.mixer.conv_kxk.0", x, groups=6) \
            + conv_bn(sd, "b.mixer.conv_scale", x, groups=6)
        return x + sd["b.layer_scale.gamma"] * (mixer - bn(sd, "b.norm.identity", x))
    if key.startswith("MobileOneBlock"):
        stride = 2 if key.endswith("stride2") else 1
        out = conv_bn(sd, "b.conv_kxk.0", x, stride=stride, groups=6) \
            + conv_bn(sd, "b.conv_scale", x, stride=stride, groups=6)
        return out + bn(sd, "b.identity", x) if stride == 1 else out
    if key == "RepConditionalPosEnc":   # pos_enc(x) + x
        return nn.functional.conv2d(x, sd["b.pos_enc.weight"], sd["b.pos_enc.bias"], padding=3, groups=6) + x
    if key == "ReparamLargeKernelConv":
        return conv_bn(sd, "b.large_conv", x, stride=2, groups=6) + conv_bn(sd, "b.small_conv", x, stride=2, groups=6)
    assert key == "RepVggDw"    # bn(conv(x) + conv1(x) + x)
    conv1 = nn.functional.conv2d(x, sd["b.conv1.weight"], sd["b.conv1.bias"], groups=6)
    return bn(sd, "b.bn", conv_bn(sd, "b.conv", x, "c", "bn", groups=6) + conv1 + x)


@pytest.mark.parametrize("key", sorted(BLOCKS))
def test_reparam_block_computes_timms_training_forward(key: str) -> None:
    module = block_module(key)
    sd = module.state_dict()
    x = torch.randn(2, 6, 9, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        got, want = module(x), timm_forward(key, sd, x)
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("key", sorted(BLOCKS))
def test_reparam_block_is_affine_in_eval_mode(key: str) -> None:
    """f(a x + b y) - f(0) = a (f(x) - f(0)) + b (f(y) - f(0)): the branches can merge into one conv."""
    module = block_module(key, seed=3)
    gen = torch.Generator().manual_seed(2)
    x, y = (torch.randn(1, 6, 11, 8, generator=gen, dtype=torch.float64) for _ in range(2))
    with torch.no_grad():
        f0 = module(torch.zeros_like(x))
        lhs = module(0.7 * x - 1.3 * y) - f0
        rhs = 0.7 * (module(x) - f0) - 1.3 * (module(y) - f0)
    assert torch.allclose(lhs, rhs, rtol=1e-10, atol=1e-10)
    assert f0.abs().max() > 0.01   # the shift is there (BatchNorm statistics were not left at 0 and 1)


# -- against timm (second venv) -------------------------------------------------------------------------------

@torch.no_grad()
def randomise(module: nn.Module, seed: int = 0) -> None:
    """Non-trivial BatchNorm statistics and affine terms, and layer scales near 1 (timm starts them at 1e-5,
    which would hide a wrong mixer branch under the tolerance)."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
            m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=gen))
            m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
    for k, p in module.named_parameters():
        if k.endswith("gamma"):
            p.copy_(0.5 + torch.rand(p.shape, generator=gen))


@pytest.mark.reference
@pytest.mark.parametrize("name", TRAIN_LISTED)
@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_timm_weights_load_strictly_and_outputs_match(name: str, size: tuple[int, int]) -> None:
    timm = pytest.importorskip("timm")
    ref = timm.create_model(name, pretrained=False).eval()
    randomise(ref)
    ours = archdsl.build(compiled(name), seed=1).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(size[1]))
    with torch.no_grad():
        want, got = ref(x), ours(x)
        want64, got64 = ref.double()(x.double()), ours.double()(x.double())
    assert got.shape == want.shape == (2, 1000)
    assert float((got - want).norm() / want.norm()) <= 1e-5
    assert float((got64 - want64).norm() / want64.norm()) <= 1e-12


@pytest.mark.reference
@pytest.mark.parametrize("name", TRAIN_LISTED)
def test_training_listing_is_timms(name: str) -> None:
    timm = pytest.importorskip("timm")
    ref = timm.create_model(name, pretrained=False)
    params, entries, items = listing(name)
    assert module_listing(ref) == items
    assert (sum(p.numel() for p in ref.parameters()), len(ref.state_dict())) == (params, entries)


@pytest.mark.reference
@pytest.mark.parametrize("name", DEPLOY)
def test_deploy_facts_are_timms(name: str) -> None:
    timm = pytest.importorskip("timm")
    from timm.utils.model import reparameterize_model

    ref = timm.create_model(name, pretrained=False).eval()
    with torch.no_grad():
        deploy = reparameterize_model(ref)
    facts = deploy_facts(name)
    assert {k: [d, list(s)] for k, (d, s) in module_listing(deploy).items()} == facts["state_dict"]
    assert sum(p.numel() for p in deploy.parameters()) == facts["params"]
    assert sum(p.numel() for p in ref.parameters()) == facts["train_params"]
