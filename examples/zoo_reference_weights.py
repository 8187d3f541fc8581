"""Reference weights in a zoo model: build resnet18 from the zoo, load a safetensors checkpoint, run it.

The zoo's specs reproduce torchvision's parameter names, so a torchvision checkpoint loads with
``strict=True``: in real use, convert the downloaded ``resnet18`` weights to safetensors once
(``save_file(torchvision.models.resnet18(weights="DEFAULT").state_dict(), "resnet18.safetensors")``)
and load that file. To stay offline, this example writes its own file from a module with the same
names: torchvision's ``resnet18`` with random weights when torchvision is installed, otherwise
another zoo build with a different seed.

Run: python examples/zoo_reference_weights.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from archdsl import zoo


def reference_module() -> torch.nn.Module:
    """A module with torchvision's resnet18 parameter names (the stand-in for downloaded weights)."""
    try:
        import torchvision
    except ImportError:
        return zoo.build("resnet18", seed=123)
    return torchvision.models.resnet18(weights=None)


def main() -> None:
    """Write the checkpoint, load it strictly into the zoo model, compare outputs with the reference."""
    reference = reference_module().eval()
    model = zoo.build("resnet18").eval()             # same as archdsl.build(zoo.spec_path("resnet18"), "resnet18")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet18.safetensors"
        save_file(reference.state_dict(), str(path))
        weights = load_file(str(path))
    model.load_state_dict(weights, strict=True)     # every key present, none extra, shapes equal
    image = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, want = model(image), reference(image)
    error = float((logits - want).norm() / want.norm())
    print(f"loaded {len(weights)} tensors from {path.name} into zoo resnet18 "
          f"({sum(p.numel() for p in model.parameters()):,} parameters)")
    print(f"logits {tuple(logits.shape)}, top-1 classes {logits.argmax(1).tolist()}, "
          f"relative difference to the reference {error:.1e}")
    if error > 1e-5:
        raise SystemExit("the zoo model does not reproduce the reference")


if __name__ == "__main__":
    main()
