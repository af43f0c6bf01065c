"""Builds coordatt_mm's compiled operator: the fused CPU kernels of Coordinate Attention.

The project's metadata is in pyproject.toml; this file only adds the PyTorch C++ extension
``coordatt_mm.ops._ext``. It compiles against the torch installed in the environment, so
install with ``pip install --no-build-isolation`` (as tools/setup_env.sh does; mmcv's ops are
built the same way). ``COORDATT_WITH_OPS=0`` skips it: CoordAtt then runs on PyTorch ops only.
"""
import glob
import os

from setuptools import setup


def extension():
    if os.environ.get('COORDATT_WITH_OPS', '1') == '0':
        return {}
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError:
        print('coordatt_mm: torch is not importable here (build isolation?); the fused CA '
              'kernels are not built. Install with --no-build-isolation to build them.')
        return {}
    csrc = 'coordatt_mm/ops/csrc'
    ext = CppExtension(
        'coordatt_mm.ops._ext', sorted(glob.glob(f'{csrc}/*.cpp')),
        depends=sorted(glob.glob(f'{csrc}/*.h')),
        # -fopenmp: ATen's parallel_for is a header template; without it the kernels run on
        # one thread. The AVX2 kernels set their own target (coord_att_cpu_avx2.cpp).
        extra_compile_args=['-O3', '-fopenmp'], extra_link_args=['-fopenmp'])
    return dict(ext_modules=[ext], cmdclass={'build_ext': BuildExtension})


setup(**extension())
