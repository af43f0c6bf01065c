#!/usr/bin/env python
"""The whole job on the tiny bundled data, on CPU (``make demo``); see
``coordatt_mm/apis/demo.py`` or ``--help``."""
import sys
import warnings

# the libraries' import-time deprecation notices are not the demo user's concern
warnings.filterwarnings('ignore', category=UserWarning)
warnings.filterwarnings('ignore', category=DeprecationWarning)

from coordatt_mm.apis.demo import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
