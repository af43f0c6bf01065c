import json
import subprocess
import sys

import pytest

from e2e_utils import REPO, env, tool


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


def pytest_collection_modifyitems(session, config, items):
    """When tests use the demo, start it now in its own process (it runs beside the other
    tests, which leave a core idle much of the time) and run those tests last."""
    uses_demo = [item for item in items if 'demo' in getattr(item, 'fixturenames', ())]
    if not uses_demo:
        return
    items[:] = [item for item in items if item not in uses_demo] + uses_demo
    # the tiny data first, so that the demo and the tests never write it at the same time
    assert tool('tools/make_tiny_data.py')([]) == 0
    wd = config._tmp_path_factory.mktemp('demo')
    log = open(wd / 'stdout.log', 'w')
    proc = subprocess.Popen([sys.executable, str(REPO / 'tools/demo.py'), '--work-dir', str(wd)],
                            cwd=REPO, env=env(), stdout=log, stderr=subprocess.STDOUT)
    config.stash[DEMO] = (proc, wd, log)


DEMO = pytest.StashKey()


@pytest.fixture(scope='session')
def demo(pytestconfig):
    """The demo (tools/demo.py) as ``make demo`` runs it, started at collection; its trained
    models serve the end-to-end and inference tests."""
    proc, wd, log = pytestconfig.stash[DEMO]
    rc = proc.wait(timeout=900)
    log.close()
    out = (wd / 'stdout.log').read_text()
    assert rc == 0, f'tools/demo.py failed:\n{out[-3000:]}'
    summary = json.loads((wd / 'summary.json').read_text())
    summary['stdout'], summary['wd'] = out, wd
    return summary
