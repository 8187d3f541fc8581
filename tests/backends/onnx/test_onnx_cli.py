"""``archdsl export``: writes a checked model atomically, reads weights from safetensors or a built folder, and
answers bad input (opset, output path, weights file) with a located message and a non-zero exit, no traceback."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

import archdsl  # noqa: E402
from archdsl.backends.onnx import ExportError, onnx_parity, to_onnx  # noqa: E402
from archdsl.backends.onnx.parity import session  # noqa: E402
from archdsl.cli import main  # noqa: E402

SPEC = """model Tiny() {
  "A small CNN for the export tests."
  in image: [N, 3, H, W]
  conv = Conv2d(8, 3, padding=1)
  bn = BatchNorm2d()
  head = Linear(5)
  out image |> conv |> bn |> relu |> GlobalAvgPool |> head
}
"""


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "tiny.arch"
    path.write_text(SPEC)
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_export_writes_a_checked_model_with_dynamic_dims(spec, tmp_path, capsys):
    target = tmp_path / "tiny.onnx"
    code, out, _ = run(capsys, "export", spec, "-o", target, "--parity")
    assert code == 0 and "wrote" in out and ": ok" in out
    model = onnx.load(str(target))
    onnx.checker.check_model(model, full_check=True)
    assert [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim] == ["N", "", "H", "W"]
    assert {"conv.weight", "bn.running_mean", "head.bias"} <= {i.name for i in model.graph.initializer}
    assert model.doc_string.startswith("A small CNN")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([spec.name, target.name])


def test_bound_sizes_opset_and_external_data(spec, tmp_path, capsys):
    target = tmp_path / "out" / "tiny.onnx"
    code, _, _ = run(capsys, "export", spec, "-o", target, "--opset", "18", "--input", "H=16,W=12",
                     "--external-data")
    assert code == 0 and (tmp_path / "out" / "tiny.onnx.data").is_file()
    model = onnx.load(str(target), load_external_data=False)
    assert model.opset_import[0].version == 18
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 3, 16, 12]
    sess = session(str(target))
    assert sess.run(None, {"image": np.ones((2, 3, 16, 12), np.float32)})[0].shape == (2, 5)


def test_weights_from_safetensors_and_a_built_folder(spec, tmp_path, capsys):
    module = archdsl.build(spec, seed=7)
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    file = tmp_path / "w.safetensors"
    save_file(state, str(file))
    proto = to_onnx(spec, weights=file)
    got = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    assert np.array_equal(got["conv.weight"], state["conv.weight"].numpy())
    assert onnx_parity(spec, weights=file).ok
    archdsl.save_built(archdsl.compile(spec), module, tmp_path / "built")
    code, _, _ = run(capsys, "export", spec, "-o", tmp_path / "b.onnx", "--weights", tmp_path / "built")
    assert code == 0
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / "b.onnx")).graph.initializer}
    assert np.array_equal(inits["head.weight"], state["head.weight"].numpy())


def test_check_reports_every_op_lowers(spec, capsys):
    code, out, _ = run(capsys, "export", spec, "--check")
    assert code == 0 and "every op lowers to ONNX opset 21" in out


@pytest.mark.parametrize(("args", "fragments"), [
    (["--opset", "17"], ["opset 17 is not supported", "18 to 21"]),
    (["--opset", "22"], ["opset 22 is not supported"]),
    ([], ["-o FILE.onnx"]),
])
def test_bad_usage(spec, capsys, args, fragments):
    code, _, err = run(capsys, "export", spec, *args)
    assert code == 2
    for fragment in fragments:
        assert fragment in err


def test_bad_outputs_leave_nothing_behind(spec, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(capsys, "export", spec, "-o", blocker / "m.onnx")
    assert code == 2 and "cannot write" in err
    code, _, err = run(capsys, "export", spec, "-o", tmp_path)
    assert code == 2 and "is a folder" in err
    target = tmp_path / "m.onnx"
    target.write_bytes(b"keep me")
    code, _, err = run(capsys, "export", spec, "-o", target)
    assert code == 2 and "already exists" in err and target.read_bytes() == b"keep me"
    if os.geteuid() != 0:      # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        code, _, err = run(capsys, "export", spec, "-o", locked / "m.onnx")
        assert code == 2 and "cannot write" in err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_bad_weights(spec, tmp_path, capsys):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01not a safetensors file")
    code, _, err = run(capsys, "export", spec, "-o", tmp_path / "a.onnx", "--weights", garbage)
    assert code == 2 and "not a readable safetensors file" in err
    code, _, err = run(capsys, "export", spec, "-o", tmp_path / "a.onnx", "--weights", tmp_path / "none.safetensors")
    assert code == 2 and "does not exist" in err
    wrong = tmp_path / "wrong.safetensors"
    save_file({"conv.weight": torch.zeros(8, 3, 5, 5), "extra": torch.zeros(1)}, str(wrong))
    code, _, err = run(capsys, "export", spec, "-o", tmp_path / "a.onnx", "--weights", wrong)
    assert code == 2 and "do not fit model Tiny" in err and "conv.weight is float32[8, 3, 5, 5]" in err
    assert "missing" in err and "extra" in err and "tiny.arch" in err
    assert not (tmp_path / "a.onnx").exists()


def test_an_op_without_a_rule_is_located(spec, capsys, monkeypatch):
    from archdsl.backends.onnx.registry import RULES, rules
    from archdsl.ops.activation import ReLU

    rules()
    monkeypatch.delitem(RULES, ReLU)
    with pytest.raises(ExportError) as info:
        to_onnx(spec)
    assert "op relu (node relu) has no ONNX lowering" in str(info.value) and "tiny.arch:7:" in str(info.value)
    code, _, err = run(capsys, "export", spec, "--check")
    assert code == 1 and "tiny.arch:7:" in err and "has no ONNX lowering" in err


def test_public_api(spec):
    proto = archdsl.to_onnx(spec, opset=19)
    assert proto.opset_import[0].version == 19 and proto.graph.name == "Tiny"
    report = archdsl.onnx_parity(spec, sizes={"N": 3, "H": 9, "W": 7})
    assert report.ok and report.outputs[0].shape == (3, 5), str(report)


def test_without_the_onnx_extra_the_command_names_it(spec, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "archdsl.backends.onnx", None)
    code, _, err = run(capsys, "export", spec, "-o", tmp_path / "x.onnx")
    assert code == 2 and "archdsl[onnx]" in err


def test_long_names_and_special_files(spec, tmp_path, capsys):
    code, _, err = run(capsys, "export", spec, "-o", tmp_path / ("y" * 300 + ".onnx"))
    assert code == 2 and "File name too long" in err
    code, _, err = run(capsys, "export", spec, "-o", "/".join(["z" * 200] * 30) + "/m.onnx")
    assert code == 2 and "cannot" in err
    link = tmp_path / "link.onnx"
    link.symlink_to(tmp_path / "target.onnx")
    code, _, _ = run(capsys, "export", spec, "-o", link)
    assert code == 0 and link.is_symlink() and onnx.load(str(tmp_path / "target.onnx")).graph.name == "Tiny"
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, _, err = run(capsys, "export", spec, "-o", fifo)
    assert code == 2 and "already exists" in err and fifo.exists()


def test_simplify_then_export_computes_the_training_model(spec, tmp_path, capsys):
    module = archdsl.build(spec, seed=3).eval()
    with torch.no_grad():                      # non-trivial running statistics, so folding BN matters
        module.bn.running_mean.uniform_(-1, 1)
        module.bn.running_var.uniform_(0.5, 2)
    weights = tmp_path / "train.safetensors"
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(weights))
    code, _, err = run(capsys, "simplify", spec, "--weights", weights, "-o", tmp_path / "dep")
    assert code == 0, err
    code, _, err = run(capsys, "export", tmp_path / "dep" / "deploy.arch", "--weights", tmp_path / "dep",
                       "-o", tmp_path / "dep.onnx")
    assert code == 0, err
    proto = onnx.load(str(tmp_path / "dep.onnx"))
    assert "BatchNormalization" not in {n.op_type for n in proto.graph.node}
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 7)).astype(np.float32)
    got = session(str(tmp_path / "dep.onnx")).run(None, {"image": x})[0]
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    assert np.linalg.norm(got - want) <= 1e-5 * np.linalg.norm(want)
