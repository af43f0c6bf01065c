"""The GPU check's subprocesses: run from the repository root, output kept in a log file."""
import os
import os.path as osp
import subprocess
import time
from typing import List, Optional, Tuple

REPO = osp.dirname(osp.dirname(osp.dirname(osp.realpath(__file__))))


def run_logged(args: List[str], log: str, env: Optional[dict] = None,
               timeout: int = 600) -> Tuple[int, str]:
    """Run ``args`` from the repository root; (exit status, output), the output in ``log`` too."""
    start = time.time()
    try:
        r = subprocess.run(args, cwd=REPO, env=dict(os.environ, **(env or {})),
                           capture_output=True, text=True, timeout=timeout)
        code, out = r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:  # its partial output comes as bytes
        code = 124
        out = ''.join(t.decode(errors='replace') if isinstance(t, bytes) else t
                      for t in (e.stdout or '', e.stderr or '')) + f'\nkilled after {timeout} s'
    with open(log, 'w') as f:
        f.write(f'$ {" ".join(args)}\n{out}')
    return code, out + f'\n[{time.time() - start:.0f} s]'


def tail(out: str) -> str:
    """The last non-empty line of a command's output that is not the timing, shortened."""
    lines = [ln for ln in out.strip().splitlines() if ln.strip() and not ln.startswith('[')]
    return lines[-1][:200] if lines else ''
