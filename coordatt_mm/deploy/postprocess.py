"""mmseg's post-processing in a graph: logits at the input's size cropped to the resized image
inside the canvas and resized to the original image, sizes given at run time.

mmseg crops the padding off the logits and resizes them bilinearly to ``ori_shape`` before
the argmax (``BaseSegmentor.postprocess_result``). Both sizes are values, not shapes, of the
graph's inputs, which the TorchScript exporter would freeze to the traced example: the
operator here exports as ONNX ``Slice`` + ``Resize`` reading them from int64 inputs.
"""
import torch
import torch.nn.functional as F
from torch import Tensor


class ToOriginalSize(torch.autograd.Function):
    """``logits`` (N, C, H, W) -> (N, C, H0, W0): rows ``[0, img_shape[0])`` and columns
    ``[0, img_shape[1])`` (the resized image at the top left of the input), resized bilinearly
    to ``ori_shape`` = (H0, W0). ONNX Resize's ``half_pixel`` mode is PyTorch's
    ``align_corners=False`` rule, including outputs one pixel long (``pytorch_half_pixel``
    maps those to the first source pixel, PyTorch to the middle)."""

    @staticmethod
    def forward(ctx, logits: Tensor, img_shape: Tensor, ori_shape: Tensor,
                align_corners: bool) -> Tensor:
        h, w = (int(v) for v in img_shape)
        return F.interpolate(logits[:, :, :h, :w], size=tuple(int(v) for v in ori_shape),
                             mode='bilinear', align_corners=align_corners)

    @staticmethod
    def symbolic(g, logits, img_shape, ori_shape, align_corners):
        def const(values):
            return g.op('Constant', value_t=torch.tensor(values, dtype=torch.int64))
        cropped = g.op('Slice', logits, const([0, 0]), img_shape, const([2, 3]))
        batch_channels = g.op('Slice', g.op('Shape', logits), const([0]), const([2]))
        sizes = g.op('Concat', batch_channels, ori_shape, axis_i=0)
        empty = g.op('Constant', value_t=torch.tensor([], dtype=torch.float32))
        return g.op('Resize', cropped, empty, empty, sizes, mode_s='linear',
                    coordinate_transformation_mode_s='align_corners' if align_corners
                    else 'half_pixel', cubic_coeff_a_f=-0.75, nearest_mode_s='floor')


def to_original_size(logits: Tensor, img_shape: Tensor, ori_shape: Tensor,
                     align_corners: bool) -> Tensor:
    """See :class:`ToOriginalSize`; ``img_shape`` and ``ori_shape`` are int64 (h, w)."""
    return ToOriginalSize.apply(logits, img_shape, ori_shape, align_corners)
