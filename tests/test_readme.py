"""README.md and docs/ tell the truth: generated tables current, links resolve, every config
documented, no page longer than a user reads."""
import re
from pathlib import Path

import pytest

from e2e_utils import tool

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / 'README.md', *sorted((REPO / 'docs').glob('*.md'))]


# every config parsed and built (about 35 s: each mmdet::/mmseg:: base makes mmengine read the
# codebase's whole model index); CI runs the same check as `make check-docs`
@pytest.mark.slow
def test_generated_tables_are_current(capsys):
    assert tool('tools/update_readme.py')(['--check']) == 0, capsys.readouterr().err
    # the complexity table puts the paper's numbers (from the data file) beside ours
    text = (REPO / 'docs/performance.md').read_text()
    row = next(line for line in text.splitlines()
               if line.startswith('| MobileNetV2 + CA (classifier'))
    assert '3,950,648' in row and '3.95M' in row and '310M' in row


def test_readme_is_short_and_links_resolve():
    readme = (REPO / 'README.md').read_text()
    assert len(readme.splitlines()) <= 200
    for page in PAGES:
        for target in re.findall(r'\]\(([^)#\s]+)(?:#[^)]*)?\)', page.read_text()):
            if not target.startswith('http'):
                assert (page.parent / target).exists(), f'{page.name}: broken link {target}'


def test_every_config_is_documented():
    text = '\n'.join(p.read_text() for p in PAGES)
    for cfg in (REPO / 'configs').rglob('*.py'):
        if '_base_' not in cfg.parts:
            assert cfg.name in text, f'{cfg.relative_to(REPO)} is in no page'
