"""Classic filters on a real photograph (scikit-image's camera), through attention."""

import pytest
import torch
from torch import nn

from vitconv.numeric import as_attention
from vitconv.numeric.tolerances import attention_error_bound, comparison_ratio, conv_error_bound

skimage_data = pytest.importorskip("skimage.data")

FILTERS = {
    "sobel x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "gaussian 5x5": [[1, 4, 6, 4, 1], [4, 16, 24, 16, 4], [6, 24, 36, 24, 6],
                     [4, 16, 24, 16, 4], [1, 4, 6, 4, 1]],
}


@pytest.fixture(scope="module")
def camera() -> torch.Tensor:
    image = torch.from_numpy(skimage_data.camera()[::4, ::4].copy())  # 128 x 128, uint8
    return (image.to(torch.float64) / 255)[None, None]


@pytest.mark.parametrize("name", FILTERS)
@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_filter_through_attention_equals_conv(camera, name, mode):
    kernel = torch.tensor(FILTERS[name], dtype=torch.float64)
    kernel = kernel / kernel.abs().sum()
    conv = nn.Conv2d(1, 1, kernel.shape[0], padding=kernel.shape[0] // 2, bias=False,
                     padding_mode=mode).double()
    with torch.no_grad():
        conv.weight.copy_(kernel)
        attn = as_attention(conv, patch_size=4)
        expected, got = conv(camera), attn(camera)
    assert attn.num_heads == 9
    bound = (attention_error_bound(attn, conv, camera)
             + conv_error_bound(conv, camera, torch.float64))
    assert comparison_ratio(got, expected, bound) <= 1
    assert expected.abs().max() > 0.01  # the filter really responds to the picture
