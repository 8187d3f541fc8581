"""The zoo's re-parameterised models simplify to deploy forms equal to their training forms, named as timm's.

Reference facts (timm's deploy keys and parameter counts, from `timm.utils.reparameterize_model`) live in
tests/data/deploy_keys/, written by tests/data/generate_reparam_reference.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import archdsl
from archdsl.testing import compare_outputs, randomize

DATA = Path(__file__).parent.parent / "data" / "deploy_keys"
# timm folds these completely, so the deploy keys must be timm's exactly; for FastViT timm leaves the ConvMlp
# BatchNorms unfolded, so ours must only not be larger.
SAME_KEYS = ("repvgg_a0", "mobileone_s0", "repvit_m0_9")
NO_LARGER = ("fastvit_t8", "fastvit_sa12")


def _timm(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


@pytest.mark.parametrize("name", SAME_KEYS + NO_LARGER)
def test_deploy_form_equals_training_form(name: str) -> None:
    graph = archdsl.compile(name)
    model = randomize(archdsl.build(graph).double(), seed=1).eval()
    deploy = archdsl.simplify(graph, weights=model)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    (error,) = compare_outputs(model, deploy.module(), [x])
    assert error <= 1e-10
    reference = _timm(name)
    assert graph.num_params() == reference["train_params"]
    keys = {k: [int(d) for d in p.shape] for k, p in deploy.graph.params.items()}
    timm_keys = {k: shape for k, (_, shape) in reference["state_dict"].items()}
    if name in SAME_KEYS:
        assert keys == timm_keys
    else:
        assert deploy.graph.num_params() <= reference["params"]
        assert {k for k in timm_keys if "reparam_conv" in k} <= set(keys)


def test_reparameterize_on_a_built_model() -> None:
    """timm's verb: model.reparameterize() returns the deploy module computing the same outputs."""
    model = randomize(archdsl.build("repvgg_a0"), seed=2).eval()
    deploy = model.reparameterize()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in deploy.modules())
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    (error,) = compare_outputs(model, deploy, [x])
    assert error <= 1e-5 and not deploy.training
