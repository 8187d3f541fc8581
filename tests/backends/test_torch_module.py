"""A built module is an ordinary PyTorch module: author's names, PyTorch's init, train/eval, deepcopy, checks."""

from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import archdsl
import archdsl.zoo
from archdsl.backends.torch.build import build_module
from archdsl.backends.torch.runtime import InputShapeError
from tests.tiny_resnet import with_block

ROOT = Path(__file__).resolve().parents[2]

TINY = with_block("""\
model Tiny(num_classes: int = 5) {
  in image: [N, 3, H, W]
  conv1 = Conv2d(4, 3, padding=1, bias=false)
  bn1 = BatchNorm2d()
  layer1 = [BasicBlock(4) for i in range(1)]
  layer2 = [BasicBlock(8, stride=2 if i == 0 else 1) for i in range(2)]
  fc = Linear(num_classes)
  out image |> conv1 |> bn1 |> relu |> layer1 |> layer2 |> AdaptiveAvgPool2d(1) |> flatten |> fc
}
""")


class HandBlock(nn.Module):
    """The spec's Block written by hand, layers constructed in the order the spec first uses them."""

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (self.downsample(x) if hasattr(self, "downsample") else x))


class HandTiny(nn.Module):
    """The spec's Tiny model written by hand."""

    def __init__(self, num_classes: int = 5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.layer1 = nn.Sequential(HandBlock(4, 4))
        self.layer2 = nn.Sequential(HandBlock(4, 8, stride=2), HandBlock(8, 8))
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits."""
        x = self.layer2(self.layer1(torch.relu(self.bn1(self.conv1(x)))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@pytest.fixture(scope="module")
def graph() -> archdsl.Graph:
    return archdsl.compile(TINY)


def hand(seed: int) -> HandTiny:
    torch.manual_seed(seed)
    return HandTiny()


def test_state_dict_names_and_shapes_are_the_graphs(graph):
    state = build_module(graph).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(p.shape) for k, p in graph.params.items()}
    for name in ("layer1.0.conv1.weight", "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var",
                 "layer2.1.bn2.num_batches_tracked", "fc.bias"):
        assert name in state
    assert state["bn1.num_batches_tracked"].dtype == torch.int64
    buffers = {k for k, p in graph.params.items() if p.buffer}
    assert buffers == {k for k, _ in build_module(graph).named_buffers()}


def test_state_dict_keys_in_the_hand_written_order(graph):
    assert list(build_module(graph).state_dict()) == list(HandTiny().state_dict())


@pytest.mark.parametrize("seed", [0, 7])
def test_init_is_pytorchs_own(graph, seed):
    ours, theirs = build_module(graph, seed=seed).state_dict(), hand(seed).state_dict()
    for name, value in theirs.items():
        assert torch.equal(ours[name], value), name


def test_init_is_deterministic_and_seeded(graph):
    a, b, c = (build_module(graph, seed=s).state_dict() for s in (3, 3, 4))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["layer1.0.conv1.weight"], c["layer1.0.conv1.weight"])
    assert not torch.equal(a["fc.weight"], c["fc.weight"])


def test_seeded_build_leaves_the_global_generator_alone(graph):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_module(graph, seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_forward_equals_the_hand_written_module(graph):
    ours, theirs = build_module(graph, seed=2), hand(2)
    x = torch.randn(3, 3, 8, 8)
    torch.testing.assert_close(ours(x), theirs(x))
    ours.eval()
    theirs.eval()
    torch.testing.assert_close(ours(x), theirs(x))


def test_batchnorm_running_stats_update_in_train_mode_only(graph):
    module = build_module(graph)
    x = torch.randn(4, 3, 8, 8) * 3 + 1
    before = {k: v.clone() for k, v in module.state_dict().items()}
    module.eval()
    with torch.no_grad():
        first = module(x)
        torch.testing.assert_close(module(x), first)
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    module.train()
    module(x)
    after = module.state_dict()
    assert int(after["layer2.1.bn1.num_batches_tracked"]) == 1
    assert not torch.equal(after["bn1.running_mean"], before["bn1.running_mean"])
    assert not torch.equal(after["layer2.0.downsample.1.running_var"], before["layer2.0.downsample.1.running_var"])


def test_deepcopy_is_independent_and_equal(graph):
    module = build_module(graph, seed=1).eval()
    twin = copy.deepcopy(module)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(twin(x), module(x))
    with torch.no_grad():
        twin.fc.bias.add_(1.0)
    assert not torch.equal(twin.fc.bias, module.fc.bias)
    assert type(twin) is type(module)


def test_check_inputs_names_the_input_shape_and_location(tmp_path):
    path = tmp_path / "tiny.arch"
    path.write_text(TINY)
    module = build_module(archdsl.compile(path), check_inputs=True)
    module(torch.randn(1, 3, 8, 8))
    line = next(i for i, text in enumerate(TINY.splitlines(), 1) if "in image" in text)
    col = TINY.splitlines()[line - 1].index("in image") + 1
    with pytest.raises(InputShapeError) as info:
        module(torch.randn(1, 4, 8, 8))
    message = str(info.value)
    assert "'image'" in message and "[N, 3, H, W]" in message
    assert re.search(re.escape(f"{path}:{line}:{col}"), message), message


def test_check_inputs_off_by_default(graph):
    module = build_module(graph)
    assert "check_inputs" not in module.archdsl_source
    with pytest.raises(RuntimeError):   # torch's own error, from the first conv
        module(torch.randn(1, 4, 8, 8))


def _baseline():
    """benchmarks/baselines/resnet.py: torchvision's ResNet written out by hand."""
    spec = importlib.util.spec_from_file_location("baseline_resnet", ROOT / "benchmarks" / "baselines" / "resnet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, layers", [("resnet50", [3, 4, 6, 3]), ("resnet152", [3, 8, 36, 3])])
def test_benchmarked_zoo_resnets_have_the_baselines_state_dict(name, layers):
    base = _baseline()
    with torch.device("meta"):   # names and shapes only: no memory, no init
        ours = build_module(archdsl.zoo.compile(name), seed=None).state_dict()
        theirs = base.ResNet(base.Bottleneck, layers, init_weights=False).state_dict()
    assert [(k, v.shape) for k, v in ours.items()] == [(k, v.shape) for k, v in theirs.items()]


def test_zoo_resnet_blocks_compute_what_the_baseline_computes():
    base = _baseline()
    spec = f'import "{archdsl.zoo.spec_path("resnet50")}"\n' \
        "model T() { in image: [N, 3, H, W]; out image |> ResNet(Bottleneck, [1, 2, 1, 1], 3) }"
    ours = archdsl.build(spec, seed=0).eval()
    theirs = base.ResNet(base.Bottleneck, [1, 2, 1, 1], num_classes=3).eval()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


def test_in_place_forms_give_the_hand_written_gradients(graph):
    ours, theirs = build_module(graph, seed=6), hand(6)
    assert "torch.relu_(" in ours.archdsl_source and ".add_(" in ours.archdsl_source
    x = torch.randn(3, 3, 8, 8)
    ours(x).square().sum().backward()
    theirs(x).square().sum().backward()
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


SHARED = """\
model Shared() {
  in x: [N, 4]
  fc = Linear(4)
  head = Linear(4)
  let y = x |> fc
  out sigmoid(relu(y) + y) |> head |> relu
}
"""


def test_in_place_only_on_single_use_fresh_tensors():
    module = build_module(archdsl.compile(SHARED))
    source = module.archdsl_source.split("def forward")[1]
    assert "torch.relu_(fc)" not in source and "fc.add_(" not in source   # y has two uses
    assert "torch.relu_(head)" in source                                    # head's result has one
    x = torch.randn(2, 4, requires_grad=True)
    before = x.detach().clone()
    out = module(x)
    out.sum().backward()
    assert torch.equal(x.detach(), before)   # the caller's tensor is never overwritten
    y = module.fc(before)
    expected = torch.relu(module.head(torch.sigmoid(torch.relu(y) + y)))
    torch.testing.assert_close(out, expected)
