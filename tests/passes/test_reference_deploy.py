"""Against timm (marker ``reference``; a venv with timm): our deploy forms equal timm's reparameterized models.

Training weights come from timm (random, with BatchNorm statistics and layer scales far from their inits) and
load into the archdsl training form with ``strict=True``; ``archdsl.simplify`` computes the deploy weights.
RepVGG-A0, MobileOne-S0 and RepViT-M0.9, which timm folds completely, must load timm's deploy state_dict with
``strict=True``; for every model the deploy outputs equal timm's deploy outputs and the deploy form has no
more parameters than timm's.
"""

from __future__ import annotations

import copy

import pytest
import torch

import archdsl
from archdsl.testing import compare_outputs, randomize

FULLY_FOLDED = ("repvgg_a0", "mobileone_s0", "repvit_m0_9")
MODELS = (*FULLY_FOLDED, "fastvit_t8")


@pytest.mark.reference
@pytest.mark.parametrize("name", MODELS)
def test_deploy_form_matches_timms(name: str) -> None:
    """Our deploy form computes timm's training form (float64, exact), loads timm's deploy weights (names and
    shapes equal) and then computes timm's deploy outputs; it is never larger than timm's."""
    timm = pytest.importorskip("timm")
    from timm.utils.model import reparameterize_model

    ref = randomize(timm.create_model(name, pretrained=False), seed=4).eval()
    ours = archdsl.build(name).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    deploy64 = archdsl.simplify(name, weights=copy.deepcopy(ours).double()).module()
    (error,) = compare_outputs(copy.deepcopy(ref).double(), deploy64, [x.double()])
    assert error <= 1e-10                                           # exact: timm's own fuse is float32
    with torch.no_grad():
        timm_deploy = reparameterize_model(copy.deepcopy(ref)).eval()
    ours_params = sum(p.numel() for p in deploy64.parameters())
    assert ours_params <= sum(p.numel() for p in timm_deploy.parameters())
    if name in FULLY_FOLDED:
        loaded = archdsl.simplify(name).module()
        loaded.load_state_dict(timm_deploy.state_dict(), strict=True)
        (error,) = compare_outputs(timm_deploy, loaded, [x])
        assert error <= 1e-6
