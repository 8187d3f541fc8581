"""``archdsl viz --diff``: the training form and the deploy form side by side, merged layers marked."""

from __future__ import annotations

from archdsl.cli import main

SPEC = """
model Rep() {
  in x: [N, 4, H, W]
  out relu(x |> reparam { a = seq[Conv2d(4, 3, padding=1), BatchNorm2d()]; b = BatchNorm2d() })
}
"""


def test_diff_draws_both_forms_and_marks_the_merged_conv(tmp_path, capsys) -> None:
    spec = tmp_path / "rep.arch"
    spec.write_text(SPEC)
    assert main(["viz", str(spec), "--diff"]) == 0
    dot = capsys.readouterr().out
    assert '"cluster_g0"' in dot and '"cluster_g1"' in dot and "Rep: 5 -> 2 ops" in dot
    marked = [line for line in dot.splitlines() if 'penwidth=3' in line]
    assert len(marked) == 1 and "reparam_conv" in marked[0]


def test_passes_option_and_folded_blocks(tmp_path, capsys) -> None:
    out = tmp_path / "d.dot"
    assert main(["viz", "repvgg_a0", "--passes", "merge-branches", "--depth", "1", "-o", str(out)]) == 0
    text = out.read_text()
    assert 'g1/b:stem" [' in text and "penwidth=3" in text and "deploy form (merge-branches)" in text
