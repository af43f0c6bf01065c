"""The channel argument of attention layers: mmcv's plugin protocol passes ``in_channels``."""
from typing import Optional


def resolve_channels(layer: str, in_channels: Optional[int], channels: Optional[int]) -> int:
    """``in_channels`` (mmcv plugins, our backbones) or its older name ``channels``."""
    if in_channels is None and channels is None:
        raise TypeError(f'{layer}: in_channels is required')
    if in_channels is not None and channels is not None and in_channels != channels:
        raise ValueError(f'{layer}: in_channels={in_channels} and channels={channels} disagree')
    return in_channels if in_channels is not None else channels
