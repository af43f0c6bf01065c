"""Complexity counts and latency benchmarks of our models (``tools/analysis/``)."""
from coordatt_mm.analysis.complexity import (
    count_madds,
    count_params,
    load_paper_results,
)

__all__ = ['count_madds', 'count_params', 'load_paper_results']
