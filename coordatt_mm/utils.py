"""Small shared helpers."""


def make_divisible(value: float, divisor: int, min_value: int = None,
                   min_ratio: float = 0.9) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never below ``min_ratio``
    of it (the channel rule of MobileNetV2 and its released CA variant)."""
    min_value = divisor if min_value is None else min_value
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < min_ratio * value:
        new_value += divisor
    return new_value
