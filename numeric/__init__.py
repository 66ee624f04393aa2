"""PyTorch side: patch tokens, relative-bias attention, and Conv2d -> attention conversion.

    from numeric import as_attention, convert_model
    attn = as_attention(torch.nn.Conv2d(16, 32, 5, padding=2), patch_size=4)  # 9 heads
"""

from numeric.attention import RelativeMultiheadAttention
from numeric.conv_attention import ConvAttention, as_attention
from numeric.convert import LayerPlan, convert_model, plan_conversion
from numeric.patches import patchify, unpatchify

__all__ = [
    "ConvAttention",
    "LayerPlan",
    "RelativeMultiheadAttention",
    "as_attention",
    "convert_model",
    "patchify",
    "plan_conversion",
    "unpatchify",
]
