"""What this CPU's vector units offer: the features that decide which fused kernels run and how
far INT8 pays (VNNI), named with every figure a tool reports."""
import platform
from typing import Dict, Optional, Tuple

# name -> the /proc/cpuinfo flags, any of which has it (VNNI in its AVX-512 or its AVX form)
VECTOR_FEATURES = {'AVX2': ('avx2',), 'AVX-512': ('avx512f',),
                   'VNNI': ('avx512_vnni', 'avx_vnni')}


def cpu_info(path: str = '/proc/cpuinfo') -> Tuple[str, Optional[Dict[str, bool]]]:
    """The CPU's model name and {feature: present} for :data:`VECTOR_FEATURES`, from the
    first processor of ``path``; None for the features where it lists no x86 flags."""
    name, flags = None, None
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(':')
                key = key.strip()
                if key == 'model name' and name is None:
                    name = value.strip()
                elif key == 'flags' and flags is None:
                    flags = set(value.split())
    except OSError:  # not Linux: no features to read
        pass
    name = name or platform.processor() or platform.machine()
    if flags is None:
        return name, None
    return name, {k: any(f in flags for f in fs) for k, fs in VECTOR_FEATURES.items()}


def features_text(cpuinfo: str = '/proc/cpuinfo',
                  features: Optional[Dict[str, bool]] = None) -> str:
    """``'AVX2 yes, AVX-512 no, VNNI no'`` for this CPU (or why it is unknown); ``features``:
    :func:`cpu_info`'s, when already read."""
    if features is None:
        _, features = cpu_info(cpuinfo)
    if features is None:
        return f'unknown (no x86 flags in {cpuinfo})'
    return ', '.join(f'{k} {"yes" if v else "no"}' for k, v in features.items())
