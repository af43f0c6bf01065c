"""The project's rule for tests that need the fused CoordAtt operator: the set-up builds it
unless ``COORDATT_WITH_OPS=0``, and only then do such tests skip; anywhere else an operator
that is missing or does not load fails them with its load error, so that a stale build cannot
leave the run green."""
import os

import pytest

from coordatt_mm import ops

NOT_BUILT = 'COORDATT_WITH_OPS=0: the fused operator is not built'


def require_fused_operator() -> None:
    """Skip (``COORDATT_WITH_OPS=0``) or fail unless the fused operator is loaded."""
    if os.environ.get('COORDATT_WITH_OPS') == '0':
        pytest.skip(NOT_BUILT)
    if not ops.fused_available():
        pytest.fail(f'the fused CoordAtt operator is {ops.fused_status()}; `make setup` '
                    'rebuilds it (COORDATT_WITH_OPS=0 is the only reason to go without)',
                    pytrace=False)
