"""Running mim / tools as users do (subprocesses) and reading what they leave behind."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# the shortened demo schedule of the default test run, and what it must reach
DET_EPOCHS, SEG_ITERS = 30, 80
MIN_DET_MAP, MIN_SEG_MIOU = 0.05, 40.0


def tool(rel_path, name='main'):
    """A function of one of the repo's scripts (e.g. its ``main``), to call in this process:
    the same code as the command line without a new interpreter's start-up."""
    import runpy
    return runpy.run_path(str(REPO / rel_path))[name]


def env():
    e = dict(os.environ)
    e['PATH'] = f'{BIN}{os.pathsep}' + e.get('PATH', '')
    return e


def run(args, cwd, timeout=900):
    """Run a command; on failure, fail with the tail of its output."""
    r = subprocess.run([str(a) for a in args], cwd=cwd, env=env(), capture_output=True,
                       text=True, timeout=timeout)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f'{" ".join(map(str, args))} failed:\n{out[-3000:]}'
    return out


def train_losses(work_dir):
    """Logged training losses, in order, of every run in work_dir."""
    losses = []
    for f in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        for line in open(f):
            rec = json.loads(line)
            if 'loss' in rec and 'lr' in rec:
                losses.append(rec['loss'])
    return losses


def last_json_metrics(work_dir, key):
    """Metrics of the newest run in work_dir whose json log has ``key``."""
    for f in sorted(glob.glob(osp.join(work_dir, '*', '*.json')), reverse=True):
        for line in reversed(open(f).read().splitlines()):
            rec = json.loads(line)
            if key in rec:
                return rec
    raise AssertionError(f'no {key} in the json logs of {work_dir}')
