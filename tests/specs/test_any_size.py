"""Zoo models run at every size their reference runs at: no fixed-size workaround where the reference accepts
other sizes, and the models that dropped theirs run (and match the reference) at two sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import archdsl
from archdsl import zoo
from archdsl.analysis import bind
from archdsl.elaborate.loader import parse_source
from archdsl.syntax import ast as A
from tests.specs.reference_models import compiled, relative_error

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Zoo models that once took a fixed image size and now run at any size, with two (H, W) their reference runs at.
ANY_SIZE = {"mobilevit_s": ((256, 256), (224, 192))}
# Models whose reference fixes the image size; each spec file says why ("The reference fixes the image size").
FIXED_BY_REFERENCE = {"vit_b_16", "mixer_b16_224", "resmlp_12_224", "levit_128", "efficientformer_l1", "dcgan_discriminator",
                      "cosformer_deit_tiny", "flatten_deit_tiny", "vig_deit_tiny"}
REASON = "The reference fixes the image size"


def _models(path: Path) -> list[A.BlockDef]:
    module = parse_source(path.read_text(encoding="utf-8"), str(path))
    return [item for item in module.items if isinstance(item, A.BlockDef) and item.kind == "model"]


def _fixed_dims(model: A.BlockDef) -> list[str]:
    """Input dims of a model that fix a spatial or sequence size (an axis past batch and channel): a model
    parameter, or a literal above 1."""
    params = {p.name for p in model.params}
    out = []
    for stmt in model.body:
        if not isinstance(stmt, A.InputStmt):
            continue
        for axis, d in enumerate(stmt.type.dims):
            if axis < 2:
                continue
            if isinstance(d, A.Name) and d.id in params:
                out.append(f"{stmt.name}[{axis}] = {d.id}")
            elif isinstance(d, A.Num) and d.value > 1:
                out.append(f"{stmt.name}[{axis}] = {d.value}")
    return out


FILES = [*zoo.spec_files(), *sorted(EXAMPLES.glob("*.arch"))]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_fixed_size_workaround_where_the_reference_accepts_other_sizes(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for model in _models(path):
        fixed = _fixed_dims(model)
        if model.name in FIXED_BY_REFERENCE:
            assert fixed and REASON in text, f"{model.name}: say in the spec why the reference fixes the size"
        else:
            assert fixed == [], f"{model.name} fixes input sizes {fixed}: use symbols or patterns ([N, 3, 32*P, W])"


def test_the_fixed_list_names_zoo_models() -> None:
    assert FIXED_BY_REFERENCE <= set(zoo.names()) and set(ANY_SIZE) <= set(zoo.names())


@pytest.mark.parametrize("name", sorted(ANY_SIZE))
def test_runs_at_two_sizes_with_the_inferred_shapes(name: str) -> None:
    graph = compiled(name)
    module = archdsl.build(graph, seed=0).eval()
    for h, w in ((64, 64), (72, 56)):      # small sizes for CI; one whose last map is odd (resized)
        env = {"B": 1, "H": h, "W": w}
        with torch.no_grad():
            out = module(torch.randn(1, 3, h, w))
        assert tuple(out.shape) == tuple(int(d) for d in bind(graph, env).output_types()["out"].shape)
        assert torch.isfinite(out).all()


@pytest.mark.reference
@pytest.mark.parametrize("name", sorted(ANY_SIZE))
def test_reference_weights_load_strictly_and_match_at_two_sizes(name: str) -> None:
    timm = pytest.importorskip("timm")
    ref = timm.create_model(name, pretrained=False).eval()
    ours = archdsl.build(compiled(name), seed=1).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    for h, w in ANY_SIZE[name]:
        x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(h))
        with torch.no_grad():
            want, got = ref(x), ours(x)
        assert got.shape == want.shape
        assert relative_error(want, got) <= 1e-5, (h, w)


@pytest.mark.parametrize("name", sorted(ANY_SIZE))
def test_onnx_export_matches_at_a_size_that_resizes(name: str) -> None:
    pytest.importorskip("onnxruntime")
    from archdsl.backends.onnx import onnx_parity

    report = onnx_parity(compiled(name), sizes={"B": 1, "H": 72, "W": 56})
    assert report.ok, str(report)
