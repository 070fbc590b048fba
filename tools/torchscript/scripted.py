"""What the scripts in this folder share: where the engine's weightless TorchScript modules live, and
how one is written there."""
import pathlib

import torch

MODULES = (pathlib.Path(__file__).resolve().parents[2] / "src" / "main" / "resources" / "dev" / "griffin" / "serve"
           / "model")


def write(module: torch.nn.Module, name: str) -> None:
    """Scripts module and saves it as MODULES/name. torch must match the libtorch that DJL's
    pytorch-native-cpu bundles (2.7.1) for the engine to load the file."""
    if not torch.__version__.startswith("2.7.1"):
        raise SystemExit(f"torch {torch.__version__}: the engine's libtorch is 2.7.1; install torch==2.7.1")
    out = MODULES / name
    scripted = torch.jit.script(module)
    out.parent.mkdir(parents=True, exist_ok=True)
    scripted.save(str(out))
    print(f"wrote {out} ({out.stat().st_size} bytes)")
