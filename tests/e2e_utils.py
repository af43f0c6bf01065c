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
DET_DEMO = REPO / 'configs/demo/ssdlite_mobilenetv2-ca_1xb6-14e_tiny-coco.py'
SEG_DEMO = REPO / 'configs/demo/deeplabv3_mobilenetv2-ca-d16_1xb8-100i_tiny-voc12aug.py'
# the demo's own schedule (its configs': 14 epochs, 100 iterations), which the tests run as
# users do; a shorter one ended below the demo's thresholds on some CPUs (training on tiny data
# amplifies the rounding differences between instruction sets)
DET_EPOCHS, SEG_ITERS = 14, 100


def tool(rel_path, name='main'):
    """A function of one of the repo's scripts (e.g. its ``main``), to call in this process:
    the same code as the command line without a new interpreter's start-up."""
    import runpy
    return runpy.run_path(str(REPO / rel_path))[name]


def env():
    e = dict(os.environ)
    e['PATH'] = f'{BIN}{os.pathsep}' + e.get('PATH', '')
    return e


def launch(args, cwd, extra_env=None, timeout=900):
    """Run a command with the tests' helpers importable; the completed process."""
    e = env()
    e['PYTHONPATH'] = str(REPO / 'tests') + os.pathsep + e.get('PYTHONPATH', '')
    e.update(extra_env or {})
    return subprocess.run([str(a) for a in args], cwd=cwd, env=e, capture_output=True,
                          text=True, timeout=timeout)


def run(args, cwd, timeout=900):
    """Run a command; on failure, fail with the tail of its output."""
    r = launch(args, cwd, timeout=timeout)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f'{" ".join(map(str, args))} failed:\n{out[-3000:]}'
    return out


def write_cfg(path: Path, base: Path, body: str) -> Path:
    """A config file that inherits ``base`` and adds ``body``."""
    path.write_text(f"_base_ = '{base}'\n" + body)
    return path


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
