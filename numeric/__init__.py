"""PyTorch side: patch tokens, relative-bias attention, and Conv2d -> attention conversion.

    from vitconv.numeric import as_attention, convert_model
    attn = as_attention(torch.nn.Conv2d(16, 32, 5, padding=2), patch_size=4)  # 9 heads
"""

from vitconv.numeric.attention import RelativeMultiheadAttention
from vitconv.numeric.conv_attention import ConvAttention, as_attention
from vitconv.numeric.convert import LayerPlan, convert_model, plan_conversion
from vitconv.numeric.patches import patchify, unpatchify

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
