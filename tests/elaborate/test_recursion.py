"""Tree architectures: recursion of blocks and variadic inputs (``in *children``), as DLA needs them."""

from __future__ import annotations

from pathlib import Path

import pytest

import archdsl
from archdsl.errors import ArchError
from archdsl.syntax.parser import parse
from archdsl.syntax.printer import format_module
from archdsl.syntax.yaml_frontend import parse_yaml
from archdsl.syntax.yaml_printer import format_yaml

DLA34 = Path(__file__).resolve().parents[1] / "data" / "dla34.arch"


def error_of(source: str) -> ArchError:
    """The ArchError compiling ``source`` raises."""
    with pytest.raises(ArchError) as info:
        archdsl.compile(source)
    return info.value


def test_dla34_has_timms_parameters() -> None:
    """DLA-34 written as a recursive tree: timm's dla34 parameter count (15,742,104) and its names."""
    g = archdsl.compile(DLA34)
    assert sum(p.numel() for p in g.params.values() if not p.buffer) == 15_742_104
    for name in ("level2.project.0.weight", "level2.root.conv.weight", "level3.tree1.tree1.conv1.weight",
                 "level3.tree2.root.bn.running_var", "level5.root.conv.weight", "fc.bias"):
        assert name in g.params
    # the deepest root aggregates x2, x1, the level's bottom and tree1's output: 2*128 + 64 + 128 channels
    assert g.params["level3.tree2.root.conv.weight"].shape == (128, 448, 1, 1)
    assert g.params["level5.root.conv.weight"].shape == (512, 2 * 512 + 256, 1, 1)


def test_dla34_runs() -> None:
    """The generated module runs and gives one logit row per image."""
    torch = pytest.importorskip("torch")
    model = archdsl.build(DLA34, seed=0, num_classes=10).eval()
    with torch.no_grad():
        assert tuple(model(torch.randn(2, 3, 224, 224)).shape) == (2, 10)


ROOT = "block Root() {\n  in first: [N, C]\n  in *rest: [N, ...]\n  out concat([first] + rest, dim=1)\n}\n"


def test_a_variadic_input_takes_zero_or_more_tensors() -> None:
    """``in *rest`` binds the tensors after the fixed inputs as a list (maybe empty); a list spreads into inputs."""
    g = archdsl.compile(ROOT + "model M() {\n  in x: [N, 4]\n  r = Root()\n  s = Root()\n"
                               "  out s(r(x, [x, x]), [])\n}\n")
    assert [n.op.name for n in g.nodes] == ["concat", "concat"]
    assert g.nodes[0].types[0].shape[1] == 12
    assert g.nodes[1].inputs == (g.nodes[0].outputs[0],)


def test_variadic_input_misuse() -> None:
    """Too few inputs, a variadic input before a fixed one, and one in a model are located errors."""
    two = "block Two() {\n  in a: [N, 4]\n  in b: [N, 4]\n  in *rest: [N, 4]\n  out concat([a, b] + rest, dim=1)\n}\n"
    exc = error_of(two + "model M() {\n  in x: [N, 4]\n  t = Two()\n  out t(x, [])\n}\n")
    assert exc.diagnostics[0].message == "block Two takes at least 2 input(s), got 1"
    block = "block B() {\n  in *xs: [N, 4]\n  in y: [N, 4]\n  out y\n}\n"
    exc = error_of(block + "model M() {\n  in x: [N, 4]\n  b = B()\n  out b(x)\n}\n")
    assert exc.diagnostics[0].message == "the variadic input '*xs' must be the last input of B"
    assert str(exc.diagnostics[0].span) == "<string>:2:3"
    exc = error_of("model M() {\n  in *xs: [N, 4]\n  out relu(xs)\n}\n")
    assert exc.diagnostics[0].message == ("a model's inputs are fixed; '*xs' takes a varying number of tensors, "
                                          "so it is for blocks")


def test_variadic_inputs_print_and_round_trip() -> None:
    """``archdsl fmt`` keeps ``in *xs`` in .arch and in YAML (as the key '*xs')."""
    module = parse(DLA34.read_text())
    text = format_module(module)
    assert "  in *children: [N, ..., H2, W2]\n" in text
    assert parse(text) == module
    yaml_text = format_yaml(module)
    assert "'*children'" in yaml_text
    assert parse_yaml(yaml_text) == module
