"""Loading mmengine Runner checkpoints under torch >= 2.6: the allow-list adds what they hold
and nothing else. (Runner checkpoints loading at all is exercised by every resume and
``mim test`` in the end-to-end and reliability tests.)"""
import pytest
import torch


class _Sneaky:
    def __init__(self, target, name):
        self.target, self.name = target, name

    def __reduce__(self):
        return (getattr, (self.target, self.name))


def test_allow_list_still_refuses_arbitrary_globals(tmp_path):
    import numpy as np
    from mmengine.logging import HistoryBuffer

    import coordatt_mm  # noqa: F401
    for target, name in [(np.ndarray, 'tofile'), (HistoryBuffer, '__init__')]:
        torch.save({'w': torch.zeros(1), 'x': _Sneaky(target, name)}, tmp_path / 'sneaky.pth')
        with pytest.raises(Exception, match='only HistoryBuffer methods are allowed'):
            torch.load(tmp_path / 'sneaky.pth')
    torch.save({'w': torch.zeros(1), 'x': print}, tmp_path / 'print.pth')
    with pytest.raises(Exception, match='Weights only load failed'):
        torch.load(tmp_path / 'print.pth')
