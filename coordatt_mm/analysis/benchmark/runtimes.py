"""The runtimes the deployed sections time exported graphs on, each described by data: how a
file runs, the heading's settings, CA's export form per precision, what INT8 quantises, and
its own profiler where it has one. A runtime added to :data:`RUNTIMES` gets its section (named
by its key), its targets and its exports (coordatt_mm.analysis.benchmark.deployed)."""
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from coordatt_mm.deploy import ort_kernel_shares, ort_session
from coordatt_mm.deploy.plan import STATIC_CA_FORM
from coordatt_mm.deploy.quantize import OP_TYPES
from coordatt_mm.deploy.runtime import size_feeds

PRECISIONS = ('fp32', 'int8')
# one exported graph: (precision, CA's export form, operator types quantised: () in FP32)
Variant = Tuple[str, str, Tuple[str, ...]]


@dataclass(frozen=True)
class Runtime:
    """One runtime's part in the deployed sections.

    Args:
        name (str): as headings and rows name it.
        module (str): its Python package; the section says where it is not installed.
        install (str): the command that installs it.
        where (str): its settings for the heading, with ``{version}`` and ``{threads}``.
        runner (callable): (ONNX file, threads) -> a function of the input array that runs
            the file once.
        fp32_form (str): CA's export form in the FP32 rows
            (``coordatt_mm.deploy.export.CA_FORMS``).
        int8_form (str): CA's export form the INT8 rows quantise.
        int8_op_types (tuple[str]): the operator types INT8 quantises. Defaults to
            ``coordatt_mm.deploy.quantize.OP_TYPES``, what ``--int8`` quantises.
        kernel_shares (callable, optional): (ONNX file, input array, threads) ->
            {operator type: share of kernel time}, the runtime's own profile, tabled for the
            backbones. Defaults to None: no profile.
    """

    name: str
    module: str
    install: str
    where: str
    runner: Callable[[str, int], Callable]
    fp32_form: str
    int8_form: str
    int8_op_types: Tuple[str, ...] = tuple(OP_TYPES)
    kernel_shares: Optional[Callable] = None

    def variant(self, precision: str) -> Variant:
        """The graph this runtime's rows of ``precision`` ('fp32' or 'int8') run."""
        if precision == 'fp32':
            return ('fp32', self.fp32_form, ())
        return ('int8', self.int8_form, tuple(self.int8_op_types))


def _ort_runner(path: str, threads: int):
    sess = ort_session(path, threads)
    names = [i.name for i in sess.get_inputs()]
    return lambda x: sess.run(None, size_feeds(names, x))


def _ort_kernel_shares(path: str, x, threads: int) -> Dict[str, float]:
    return ort_kernel_shares(path, x, threads=threads)


def _openvino_request(path: str, threads: int, profile: bool = False):
    import openvino as ov
    config = {'INFERENCE_NUM_THREADS': threads, 'NUM_STREAMS': 1, 'PERFORMANCE_HINT': 'LATENCY'}
    if profile:
        config['PERF_COUNT'] = True
    compiled = ov.Core().compile_model(path, 'CPU', config)
    return compiled.create_infer_request(), [p.get_any_name() for p in compiled.inputs]


def _openvino_runner(path: str, threads: int):
    request, names = _openvino_request(path, threads)
    return lambda x: request.infer(size_feeds(names, x))


def _openvino_kernel_shares(path: str, x, threads: int, runs: int = 20) -> Dict[str, float]:
    """OpenVINO's performance counters over ``runs`` runs: share of time per executed layer
    type and kernel (``Subgraph jit_avx2_I8``: a fused element-wise subgraph on 8-bit
    inputs; ``Reorder``: a layout conversion), after the CPU plugin's fusions."""
    request, names = _openvino_request(path, threads, profile=True)
    total: Dict[str, float] = {}
    for i in range(runs + 2):
        request.infer(size_feeds(names, x))
        if i < 2:
            continue
        for p in request.get_profiling_info():
            key = f'{p.node_type} {p.exec_type}'
            total[key] = total.get(key, 0.0) + p.real_time.total_seconds()
    s = sum(total.values()) or 1.0
    return {k: v / s for k, v in sorted(total.items(), key=lambda kv: -kv[1])}


# section name -> runtime; CA's forms are the fastest measured on each runtime
# (docs/performance.md, deployed speed): ONNX Runtime's are what the exporter writes by default
RUNTIMES: Dict[str, Runtime] = {
    'onnxruntime': Runtime(
        'ONNX Runtime', 'onnxruntime', 'pip install onnxruntime',
        'ONNX Runtime {version}, CPU execution provider, {threads} intra-op threads without '
        'spinning', _ort_runner, fp32_form=STATIC_CA_FORM['fp32'],
        int8_form=STATIC_CA_FORM['int8'],
        kernel_shares=_ort_kernel_shares),
    'openvino': Runtime(
        'OpenVINO', 'openvino', 'pip install openvino',
        'OpenVINO {version} CPU plugin, {threads} inference threads, latency hint, one stream',
        _openvino_runner, fp32_form='product', int8_form='pool',
        kernel_shares=_openvino_kernel_shares),
}
