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
def demo(tmp_path_factory, tiny_repo_data):
    """The demo (tools/demo.py) as users run it (``make demo``); its trained models serve the
    end-to-end and inference tests. ``COORDATT_TEST_DEMO=DIR`` reuses the run of
    ``tools/demo.py --work-dir DIR`` (while working on tests)."""
    reuse = os.environ.get('COORDATT_TEST_DEMO')
    if reuse:
        summary = json.loads((Path(reuse) / 'summary.json').read_text())
        summary['stdout'], summary['wd'] = (Path(reuse) / 'demo.log').read_text(), Path(reuse)
        return summary
    wd = tmp_path_factory.mktemp('demo')
    out = run([sys.executable, REPO / 'tools/demo.py', '--work-dir', wd], cwd=REPO, timeout=900)
    summary = json.loads((wd / 'summary.json').read_text())
    summary['stdout'], summary['wd'] = out, wd
    return summary


@pytest.fixture(scope='session')
def exported(demo, tmp_path_factory):
    """The demo's trained detector and segmentor exported by the tool: {name: (path, stdout)}:
    'det', 'seg' (labels only) and 'seg_logits' (--with-logits)."""
    import contextlib
    import io
    out = tmp_path_factory.mktemp('onnx')
    export = tool('tools/deploy/export_onnx.py')
    files = {}
    for name, task, extra in (('det', 'det', []), ('seg', 'seg', []),
                              ('seg_logits', 'seg', ['--with-logits'])):
        path = out / f'{name}.onnx'
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = export([demo[task]['config'], demo[task]['checkpoint'], str(path), *extra])
        assert rc == 0, buf.getvalue()
        files[name] = (path, buf.getvalue())
    return files
