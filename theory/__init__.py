"""Exact side (sympy and plain integers, never torch): geometry, construction, bounds.

``vitconv.theory.geometry`` is the single source of truth for patch offsets and head plans;
``vitconv.theory.construction`` holds the block matrices ``M_delta`` as exact objects.
"""

from vitconv.theory.geometry import AxisGeometry, ConvGeometry, offset_interval

__all__ = ["AxisGeometry", "ConvGeometry", "offset_interval"]
