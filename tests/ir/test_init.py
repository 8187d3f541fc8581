"""Initialisers are typed declarations: every one the IR emits parses, prints back, and the runtime fills it."""

from __future__ import annotations

import math

import pytest
import torch

import archdsl
from archdsl.backends.torch.runtime import new_tensor
from archdsl.ir.init import Init
from archdsl.zoo import names


def test_every_initialiser_in_the_zoo_is_a_declaration_the_runtime_reads() -> None:
    seen = set()
    for name in names():
        for p in archdsl.compile(name).params.values():
            if p.init in seen:
                continue
            seen.add(p.init)
            init = Init.parse(p.init)
            if init.kind == "computed":      # a persistent Buffer: codegen registers its computed value
                assert p.buffer
                continue
            assert Init.parse(str(init)) == init
            t = new_tensor(tuple(int(d) for d in p.shape), p.init, p.dtype, parameter=False, fan_in=p.fan_in)
            assert t.shape == tuple(int(d) for d in p.shape)
    assert {"kaiming_uniform(a=sqrt(5))", "uniform(fan_in)", "zeros", "ones"} <= seen


def test_pytorch_default_bounds() -> None:
    """kaiming_uniform(a=sqrt(5)) is U(+-1/sqrt(fan_in)) (nn.Conv2d/nn.Linear weights); uniform(fan_in) too."""
    torch.manual_seed(0)
    w = new_tensor((64, 100), "kaiming_uniform(a=sqrt(5))", fan_in=100, parameter=False)
    b = new_tensor((5000,), "uniform(fan_in)", fan_in=100, parameter=False)
    for t in (w, b):
        assert t.abs().max() <= 0.1 and t.abs().max() > 0.09
    assert math.isclose(Init.parse("kaiming_uniform(a=sqrt(5))").get("a", 0), math.sqrt(5))


@pytest.mark.parametrize("text", ["gauss(std=1)", "normal(sd=1)", "normal(std=-1)", "uniform(a=2, b=1)",
                                  "trunc_normal(std=0)", "constant(value=1e400)", "kaiming_uniform(a=x)"])
def test_bad_initialisers_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Init.parse(text)


def test_layer_scale_module_is_built_from_its_declaration() -> None:
    model = archdsl.build("""
model Scaled() {
  in x: [N, 4, H, W]
  ls = LayerScale(0.25, dim=1)
  out x |> ls
}
""")
    assert torch.equal(model.state_dict()["ls.gamma"], torch.full((4,), 0.25))
