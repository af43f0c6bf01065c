import json
import os
import sys
from pathlib import Path

import pytest

from e2e_utils import REPO, run, tool


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
def demo(tmp_path_factory):
    """One run of the demo (tools/demo.py), as ``make demo`` runs it; its trained models serve
    the end-to-end and inference tests. (Developers iterating on those tests may
    point COORDATT_REUSE_DEMO at the work dir of an earlier such run.)"""
    reuse = os.environ.get('COORDATT_REUSE_DEMO')
    if reuse and (Path(reuse) / 'summary.json').exists():
        text = (Path(reuse) / 'summary.json').read_text()
        old = str(Path(json.loads(text)['det']['checkpoint']).parent.parent)
        summary = json.loads(text.replace(old, str(Path(reuse).resolve())))
        summary['stdout'], summary['wd'] = (Path(reuse) / 'demo.log').read_text(), Path(reuse)
        return summary
    wd = tmp_path_factory.mktemp('demo')
    out = run([sys.executable, REPO / 'tools/demo.py', '--work-dir', wd], cwd=REPO, timeout=900)
    summary = json.loads((wd / 'summary.json').read_text())
    summary['stdout'], summary['wd'] = out, wd
    return summary
