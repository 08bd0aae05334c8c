"""The data and the network of the segmentation demo (:mod:`losskit.selection.segmentation`):
synthetic grey images with small discs and squares, made by the code (no download), and a small
fully convolutional network. Nothing here depends on the rest of :mod:`losskit.selection`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["CLASSES", "DEMO_LOSSES", "segmentation_network", "synthetic_shapes"]

#: background, discs, squares
CLASSES = 3

#: the demo's candidates: the per-pixel losses (cross-entropy, focal) against the overlap
#: losses: Dice with and without the background class (its default counts it, as MONAI's
#: DiceLoss does), the common Dice + cross-entropy sum, generalized Dice and Lovász-softmax.
#: (Tversky at alpha = beta = 0.5 is Dice; at 0.3/0.7, both without the background, it scored
#: within 0.003 of Dice in the folds of seeds 0-2.)
DEMO_LOSSES: tuple[str, ...] = (
    "cross_entropy",
    "focal",
    "dice",
    "dice:include_background=False",
    "dice+cross_entropy",
    "generalized_dice",
    "lovasz_softmax",
)


def synthetic_shapes(
    n: int, size: int = 32, *, seed: int = 0, shapes: int = 2, radius: float = 2.5
) -> tuple[Tensor, Tensor]:
    """``n`` grey images ``(n, 1, size, size)`` and their masks ``(n, size, size)``: each image
    holds up to ``shapes`` small discs (class 1) and as many squares (class 2) of about
    ``radius`` pixels, brighter than a background with a random gradient and Gaussian noise.
    Deterministic in ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.arange(size, dtype=torch.float32)[:, None]
    cols = torch.arange(size, dtype=torch.float32)[None, :]
    images = torch.empty(n, 1, size, size)
    masks = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        mask = masks[i]
        for cls in (1, 2):
            count = int(torch.randint(1, shapes + 1, (), generator=gen))
            for _ in range(count):
                cy, cx = (
                    torch.rand(2, generator=gen) * (size - 2 * radius - 2) + radius + 1
                ).tolist()
                r = radius * (0.7 + 0.6 * float(torch.rand((), generator=gen)))
                if cls == 1:
                    inside = (rows - cy) ** 2 + (cols - cx) ** 2 <= r * r
                else:
                    inside = ((rows - cy).abs() <= r * 0.8) & ((cols - cx).abs() <= r * 0.8)
                mask[inside] = cls
        slope = torch.randn(2, generator=gen) * 0.02
        background = slope[0] * (rows - size / 2) + slope[1] * (cols - size / 2)
        contrast = torch.tensor([0.0, 0.8, 0.6])[mask]
        noise = 0.35 * torch.randn(size, size, generator=gen)
        images[i, 0] = background + contrast + noise
    return images, masks


def segmentation_network(
    hidden: Sequence[int] = (16, 16, 16), classes: int = CLASSES, channels: int = 1
) -> nn.Sequential:
    """The demo's fully convolutional network: a 3x3 convolution and a ReLU per entry of
    ``hidden`` (its width), every second one dilated by 2 (three layers see 9 x 9 pixels), then
    a 1x1 convolution to one logit per class. No pooling: logits ``(N, classes, H, W)`` for
    images ``(N, channels, H, W)``."""
    layers: list[nn.Module] = []
    width = channels
    for i, h in enumerate(hidden):
        dilation = 2 if i % 2 else 1
        layers += [nn.Conv2d(width, h, 3, padding=dilation, dilation=dilation), nn.ReLU()]
        width = h
    layers.append(nn.Conv2d(width, classes, 1))
    return nn.Sequential(*layers)
