"""Loading checkpoints with torch >= 2.6, where ``torch.load`` defaults to ``weights_only=True``.

mmengine 0.10.7 calls ``torch.load`` without ``weights_only``; besides tensors, the
checkpoints its Runner saves carry the MessageHub's ``HistoryBuffer`` objects (numpy arrays,
numpy scalars, and ``getattr(HistoryBuffer, 'mean')``-style references to its statistics
methods). Instead of turning the safe unpickler off, we allow-list exactly those
(``torch.serialization.add_safe_globals``): numpy array/scalar reconstruction,
``HistoryBuffer``, and a ``getattr`` that only resolves public methods of ``HistoryBuffer``.
Runner checkpoints load; a file that needs anything else is still refused by torch.
"""
import pickle

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar


def history_buffer_getattr(obj, name: str):
    """``getattr`` restricted to ``HistoryBuffer``'s public methods (what mmengine pickles)."""
    if obj is HistoryBuffer and not name.startswith('_') and callable(getattr(obj, name, None)):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'refused getattr({obj!r}, {name!r}): only HistoryBuffer methods are allowed')


# numpy >= 1.25 rebuilds a dtype through its concrete class (e.g. Float64DType)
_DTYPE_CLASSES = sorted({type(np.dtype(c)) for c in '?bhilqBHILQefdgFDGSUV'}, key=str)
MMENGINE_SAFE_GLOBALS = [HistoryBuffer, np.ndarray, np.dtype, _reconstruct, scalar,
                         *_DTYPE_CLASSES, (history_buffer_getattr, 'builtins.getattr')]


def allow_mmengine_checkpoints() -> None:
    """Allow-list the non-tensor contents of mmengine Runner checkpoints (idempotent)."""
    torch.serialization.add_safe_globals(MMENGINE_SAFE_GLOBALS)
