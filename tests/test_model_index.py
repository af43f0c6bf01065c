"""The model index mim reads: one metafile entry per config, each entry a file, and `mim
search coordatt_mm` listing them all."""
from pathlib import Path

import yaml

from e2e_utils import BIN, run

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / 'configs').rglob('*.py')
                 if '_base_' not in p.parts)


def entries():
    index = yaml.safe_load((REPO / 'model-index.yml').read_text())
    for rel in index['Import']:
        meta = yaml.safe_load((REPO / rel).read_text())
        collections = {c['Name'] for c in meta['Collections']}
        for model in meta['Models']:
            assert model['In Collection'] in collections, model['Name']
            yield rel, model


def test_every_config_has_exactly_one_entry_and_every_entry_a_file():
    listed = [m['Config'] for _, m in entries()]
    assert sorted(listed) == CONFIGS  # no config missing, none twice, none stale
    for rel, model in entries():
        assert Path(rel).parent == Path(model['Config']).parent, (rel, model['Config'])
        assert model['Metadata']['Parameters'] > 0
        assert model['Metadata']['Training Data'] == model['Results'][0]['Dataset']
        assert model['Results'][0]['Task'] in ('Object Detection', 'Semantic Segmentation',
                                               'Image Classification')


def test_weights_only_where_real_ones_exist():
    with_weights = {m['Name']: m['Weights'] for _, m in entries() if 'Weights' in m}
    assert with_weights == {'mobilenet-v2-ca_4xb64-coslr-200e_in1k':
                            'https://github.com/houqb/CoordAttention/raw/main/mbv2_ca.pth'}


def test_mim_search_lists_every_config(tmp_path):
    out = run([BIN / 'mim', 'search', 'coordatt_mm', '--field', 'config'], cwd=tmp_path)
    listed = {line.split(':', 1)[1].strip() for line in out.splitlines()
              if line.startswith('config id:')}
    missing = [c for c in CONFIGS if Path(c).stem not in listed]
    assert not missing, f'mim search does not list {missing}:\n{out[-2000:]}'


def test_parameter_counts_are_those_of_the_built_models():
    from coordatt_mm.analysis.complexity import count_params
    from coordatt_mm.apis.build import build_model
    listed = {m['Config']: m['Metadata']['Parameters'] for _, m in entries()}
    for config in ('configs/ssdlite/ssdlite_mobilenetv2-ca_8xb24-600e_coco.py',
                   'configs/imagenet/mobilenext-ca_4xb64-coslr-200e_in1k.py'):
        assert count_params(build_model(str(REPO / config))[1]) == listed[config], config
