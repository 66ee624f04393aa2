"""vitconv: any convolution as multi-head self-attention on patch tokens, with a checker that
proves it (docs/theory.md).

    from vitconv import as_attention, convert_model
    attn = as_attention(torch.nn.Conv2d(16, 32, 5, padding=2), patch_size=4)  # 9 heads

Subpackages, imported downward only: ``vitconv.theory`` (exact objects: geometry, blocks,
bounds, z3 proofs), ``vitconv.numeric`` (the PyTorch library; ``vitconv.numeric.evidence`` and
``vitconv.numeric.train`` hold what the checker and the experiment use), ``vitconv.proofs`` (the
theorems and their checker), ``vitconv.report`` (the ``vitconv`` command, reports).
"""

from importlib import import_module as _import_module
from importlib import metadata as _metadata
from pathlib import Path as _Path


def _is_checkout(root: _Path) -> bool:
    """A source checkout of this project: its pyproject names vitconv and the subpackages
    sit beside this folder (in an installed wheel they are inside it)."""
    project = root / "pyproject.toml"
    return (not (_Path(__file__).parent / "theory").is_dir() and project.is_file()
            and 'name = "vitconv"' in project.read_text(errors="replace")
            and (root / "theory" / "__init__.py").is_file())


# A source checkout keeps the subpackages in the repository's top-level folders (theory/,
# numeric/, proofs/, report/) beside this one; the wheel installs them inside it. Both
# layouts import as vitconv.<name>.
_checkout = _Path(__file__).resolve().parent.parent
if _is_checkout(_checkout) and str(_checkout) not in __path__:
    __path__.append(str(_checkout))

try:
    __version__ = _metadata.version("vitconv")
except _metadata.PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"

# The library's entry points, imported on first use: `import vitconv.theory` (exact, never
# torch) and `vitconv --version` do not pay for loading torch.
_EXPORTS = {"ConvAttention": "conv_attention", "LayerPlan": "convert",
            "RelativeMultiheadAttention": "attention", "as_attention": "conv_attention",
            "convert_model": "convert", "plan_conversion": "convert"}


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(_import_module(f"vitconv.numeric.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'vitconv' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = ["ConvAttention", "LayerPlan", "RelativeMultiheadAttention", "__version__",
           "as_attention", "convert_model", "plan_conversion"]
