#!/usr/bin/env python
"""Folder inference; the same as the installed ``coordatt-infer`` command (see --help)."""
import sys

from coordatt_cli.infer import main

if __name__ == '__main__':
    sys.exit(main())
