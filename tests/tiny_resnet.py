"""The residual block every small test ResNet is built from: one copy, imported by the tests that need it."""

BASIC_BLOCK = """\
block BasicBlock(planes: int, stride: int = 1) {
  "Two 3x3 convs with a residual."
  in x: [N, C, H, W]
  conv1 = Conv2d(planes, 3, stride=stride, padding=1, bias=false)
  bn1 = BatchNorm2d()
  conv2 = Conv2d(planes, 3, padding=1, bias=false)
  bn2 = BatchNorm2d()
  downsample = seq[Conv2d(planes, 1, stride=stride, bias=false), BatchNorm2d()] if stride != 1 or C != planes
  out relu(x |> conv1 |> bn1 |> relu |> conv2 |> bn2 + x |> downsample)
}
"""


def with_block(model: str) -> str:
    """A spec: the shared BasicBlock, then ``model`` (which applies ``BasicBlock(planes, stride=...)``)."""
    return BASIC_BLOCK + "\n" + model
