"""vitconv: any convolution as multi-head self-attention on patch tokens, with a checker that
proves it (docs/theory.md).

    from vitconv import as_attention, convert_model
    attn = as_attention(torch.nn.Conv2d(16, 32, 5, padding=2), patch_size=4)  # 9 heads

Subpackages, imported downward only: ``vitconv.theory`` (exact objects: geometry, blocks,
bounds, z3 proofs), ``vitconv.numeric`` (the PyTorch library; ``vitconv.numeric.evidence`` and
``vitconv.numeric.train`` hold what the checker and the experiment use), ``vitconv.proofs`` (the
theorems and their checker), ``vitconv.report`` (the ``vitconv`` command, reports).
"""

from importlib import metadata as _metadata
from pathlib import Path as _Path

# A source checkout keeps the subpackages in the repository's top-level folders (theory/,
# numeric/, proofs/, report/) beside this one; the wheel installs them inside it. Both
# layouts import as vitconv.<name>.
_checkout = _Path(__file__).resolve().parent.parent
if (_checkout / "theory" / "__init__.py").is_file() and str(_checkout) not in __path__:
    __path__.append(str(_checkout))

try:
    __version__ = _metadata.version("vitconv")
except _metadata.PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"

from vitconv.numeric import (  # noqa: E402 - after __path__ is complete
    ConvAttention,
    LayerPlan,
    RelativeMultiheadAttention,
    as_attention,
    convert_model,
    plan_conversion,
)

__all__ = ["ConvAttention", "LayerPlan", "RelativeMultiheadAttention", "__version__",
           "as_attention", "convert_model", "plan_conversion"]
