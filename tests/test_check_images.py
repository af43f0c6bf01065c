"""The export check's default images outside a checkout with the tiny data: the demo's
held-out images are generated once per process into one temporary folder, which is gone when
the process exits (no folder left behind per call)."""
import os
import subprocess
import sys

from e2e_utils import REPO

SCRIPT = '''
import os.path as osp
from coordatt_mm.deploy import check
check.HOLDOUT = osp.join({missing!r}, 'holdout')  # as in an installed package
calls = [check.default_images(task) for task in ('det', 'seg', 'det', 'seg')]
folders = {{osp.dirname(osp.dirname(p)) for images in calls for p in images}}
assert calls[0] == calls[2] and calls[1] == calls[3], calls
assert all(osp.isfile(p) for images in calls for p in images)
print(len(calls[0]), len(calls[1]), *folders)
'''


def test_generated_holdout_images_are_made_once_and_removed_at_exit(tmp_path):
    temp = tmp_path / 'tmp'
    temp.mkdir()
    env = dict(os.environ, TMPDIR=str(temp))
    r = subprocess.run([sys.executable, '-c', SCRIPT.format(missing=str(tmp_path / 'none'))],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    det, seg, *folders = r.stdout.split()
    assert (int(det), int(seg)) == (6, 6) and len(folders) == 1, r.stdout
    assert folders[0].startswith(str(temp / 'coordatt_holdout_'))
    assert list(temp.iterdir()) == []  # removed at exit, and no other folder was made
