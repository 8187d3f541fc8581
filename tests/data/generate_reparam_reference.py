"""Regenerate the timm reference facts for the re-parameterisable zoo models (run in the reference venv).

    python tests/data/generate_reparam_reference.py          # needs timm; writes the files next to this script

Writes ``state_dicts/<name>.txt`` (the training form's state_dict listing, in the format of the shared listings)
for the models added with their training forms, and ``deploy_keys/<name>.json`` (the deploy form after
``timm.utils.reparameterize_model``: parameter count and ``key -> [dtype, shape]``) for every model here.
Random weights only: no weights are stored.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LISTED = ("fastvit_t8", "fastvit_sa12", "repvit_m0_9")                    # training-form listings kept in tests/data
DEPLOY = ("fastvit_t8", "fastvit_sa12", "repvit_m0_9", "repvgg_a0", "mobileone_s0")


def entries(module) -> dict[str, list]:
    """``key -> [dtype, shape]`` of a module's state_dict."""
    return {k: [str(v.dtype).removeprefix("torch."), list(v.shape)] for k, v in module.state_dict().items()}


def dumps(fact: dict) -> str:
    """JSON with one state_dict entry per line (readable diffs)."""
    head = {k: v for k, v in fact.items() if k != "state_dict"}
    lines = [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    items = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in fact["state_dict"].items()]
    return "{\n" + "\n".join(lines) + '\n "state_dict": {\n' + ",\n".join(items) + "\n }\n}\n"


def main() -> int:
    import timm
    import torch
    from timm.utils.model import reparameterize_model

    version = f"timm {timm.__version__}"
    for name in LISTED:
        model = timm.create_model(name, pretrained=False)
        params = sum(p.numel() for p in model.parameters())
        items = entries(model)
        lines = [f"# {version} {name}: {params} parameters, {len(items)} state_dict entries; key dtype shape"]
        lines += [f"{k} {dtype} {shape}" for k, (dtype, shape) in items.items()]
        (HERE / "state_dicts" / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name in DEPLOY:
        model = timm.create_model(name, pretrained=False).eval()
        train_params = sum(p.numel() for p in model.parameters())
        with torch.no_grad():
            deploy = reparameterize_model(model)
        fact = {"model": name, "reference": f"{version}, timm.utils.reparameterize_model",
                "train_params": train_params, "params": sum(p.numel() for p in deploy.parameters()),
                "entries": len(deploy.state_dict()), "state_dict": entries(deploy)}
        (HERE / "deploy_keys" / f"{name}.json").write_text(dumps(fact), encoding="utf-8")
        print(f"{name}: train {train_params:,} -> deploy {fact['params']:,} parameters, {fact['entries']} entries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
