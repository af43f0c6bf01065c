import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_tables_are_generated_and_current():
    r = subprocess.run([sys.executable, str(REPO / 'tools/update_readme.py'), '--check'],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    text = (REPO / 'README.md').read_text()
    for cfg in (REPO / 'configs').glob('[sd]*/*.py'):
        assert cfg.name in text, f'{cfg.name} missing from README'
    # the complexity table puts the paper's numbers (from the data file) beside ours
    row = next(line for line in text.splitlines() if line.startswith('| MobileNetV2 + CA (classifier'))
    assert '3,950,648' in row and '3.95M' in row and '310M' in row
