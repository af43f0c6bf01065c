import json
import sys

import pytest

from e2e_utils import DET_EPOCHS, REPO, SEG_ITERS, run, tool


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    """All tiny datasets, made once per session by the same code as tools/make_tiny_data.py."""
    from coordatt_mm.datasets import make_all
    root = tmp_path_factory.mktemp('data')
    make_all(str(root))
    return root


@pytest.fixture(scope='session')
def tiny_repo_data():
    """data/tiny as tools/make_tiny_data.py leaves it (its main, run here: no start-up cost)."""
    assert tool('tools/make_tiny_data.py')([]) == 0


@pytest.fixture(scope='session')
def demo(tmp_path_factory, tiny_repo_data):
    """The demo (tools/demo.py) as users run it, on the tests' schedule; its trained models
    serve the end-to-end and inference tests."""
    wd = tmp_path_factory.mktemp('demo')
    out = run([sys.executable, REPO / 'tools/demo.py', '--work-dir', wd, '--det-epochs',
               DET_EPOCHS, '--seg-iters', SEG_ITERS], cwd=REPO, timeout=900)
    summary = json.loads((wd / 'summary.json').read_text())
    summary['stdout'], summary['wd'] = out, wd
    return summary
