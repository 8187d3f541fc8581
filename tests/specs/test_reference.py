"""Zoo models against their torchvision / timm originals: the reference's weights load with strict=True and
give the same outputs (run in the second environment: pytest tests/specs/test_reference.py -m reference)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import archdsl
from archdsl import zoo
from tests.specs.reference_models import compiled, example_inputs, relative_error, small_sizes, zoo_table

pytest.importorskip("torchvision")

pytestmark = pytest.mark.reference

# Constructor arguments that make the reference match the zoo spec (no auxiliary heads; explicit init
# so torchvision does not warn about a changing default).
REFERENCE_KWARGS = {
    "googlenet": {"aux_logits": False, "init_weights": False},
    "inception_v3": {"aux_logits": False, "init_weights": False},
}
TOLERANCE = 1e-5
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)
WITH_REFERENCE = [n for n in zoo.names() if n in zoo_table()]


def reference_module(name: str) -> nn.Module:
    """The original model with random weights: torchvision's builder or timm's ``create_model``."""
    if zoo_table()[name].source == "timm":
        timm = pytest.importorskip("timm")
        return timm.create_model(name, pretrained=False)
    import torchvision

    return torchvision.models.get_model(name, weights=None, **REFERENCE_KWARGS.get(name, {}))


@torch.no_grad()
def randomise_norms(module: nn.Module, seed: int = 0) -> None:
    """Give every normalisation layer non-trivial statistics and affine terms, so a swapped one shows."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if not isinstance(m, NORMS):
            continue
        if getattr(m, "running_var", None) is not None:
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
        if getattr(m, "weight", None) is not None:
            m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=gen))
            m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))


@pytest.mark.parametrize("name", WITH_REFERENCE)
def test_reference_weights_load_strictly_and_outputs_match(name: str) -> None:
    ref = reference_module(name).eval()
    randomise_norms(ref)
    ours = archdsl.build(compiled(name), seed=1).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    graph = compiled(name)
    inputs = example_inputs(graph, small_sizes(graph, batch_size=2))
    with torch.no_grad():
        want, got = ref(*inputs), ours(*inputs)
    assert got.shape == want.shape
    assert relative_error(want, got) <= TOLERANCE
