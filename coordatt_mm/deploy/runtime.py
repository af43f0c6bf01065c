"""ONNX Runtime sessions, exported models with their metadata, and their outputs turned into
predictions in the original image's pixels (what ``coordatt-infer`` and ``tools/test.py`` do
with an ``.onnx`` file)."""
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

META = 'coordatt_mm.'  # prefix of the metadata the exporter writes into the model


def ort_session(onnx_file: str, threads: Optional[int] = 2, profile: bool = False,
                device: str = 'cpu'):
    """An ONNX Runtime session on the CPU, or on CUDA through its CUDA execution provider.
    Intra-op threads do not spin between runs: a waiting session's spinning threads would slow
    down another one timed beside it."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.add_session_config_entry('session.intra_op.allow_spinning', '0')
    so.enable_profiling = profile
    providers = ['CPUExecutionProvider']
    if device.startswith('cuda'):
        if 'CUDAExecutionProvider' not in ort.get_available_providers():
            raise RuntimeError(f'ONNX Runtime {ort.__version__} here has no CUDA execution '
                               f'provider (has: {", ".join(ort.get_available_providers())}); '
                               f'install onnxruntime-gpu or use --device cpu')
        index = device.split(':')[1] if ':' in device else '0'
        providers = [('CUDAExecutionProvider', dict(device_id=int(index))), *providers]
    return ort.InferenceSession(onnx_file, so, providers=providers)


def ort_kernel_shares(onnx_file: str, x: np.ndarray, runs: int = 20,
                      threads: int = 2) -> Dict[str, float]:
    """ONNX Runtime's own profile of ``runs`` runs: share of kernel time per operator type
    (after its graph optimisations: fused convs, layout reorders, ...)."""
    sess = ort_session(onnx_file, threads, profile=True)
    name = sess.get_inputs()[0].name
    for _ in range(runs):
        sess.run(None, {name: x})
    path = sess.end_profiling()
    with open(path) as f:
        events = json.load(f)
    os.remove(path)
    total: Dict[str, float] = {}
    for e in events:
        if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time'):
            op = e['args']['op_name']
            total[op] = total.get(op, 0.0) + e['dur']
    s = sum(total.values()) or 1.0
    return {k: v / s for k, v in sorted(total.items(), key=lambda kv: -kv[1])}


SIZE_INPUTS = ('img_shape', 'ori_shape')  # segmentation graphs' sizes (end2end.py)


def size_feeds(input_names: Sequence[str], batch: np.ndarray,
               img_hw: Optional[Sequence[int]] = None,
               ori_hw: Optional[Sequence[int]] = None) -> Dict[str, np.ndarray]:
    """A graph's inputs for ``batch`` (its first input): with the segmentation graphs'
    ``img_shape`` and ``ori_shape`` where it takes them, by default the batch's own size (the
    label map at the input's size)."""
    feeds = {input_names[0]: batch}
    if set(SIZE_INPUTS) <= set(input_names):
        img_hw = tuple(img_hw or batch.shape[2:])
        feeds['img_shape'] = np.asarray(img_hw, np.int64)
        feeds['ori_shape'] = np.asarray(ori_hw or img_hw, np.int64)
    return feeds


class OnnxModel:
    """An end-to-end model written by ``tools/deploy/export_onnx.py``, run by ONNX Runtime.

    Its metadata says the task, the class names and palette, the value padding stands for
    and the segmentation head's ``align_corners``. Detection models have one static input
    size (``input_hw``); segmentation models any size, or one with ``--static``, and take the
    resized and the original image's size (``takes_sizes``; exports before that option give
    their labels at the input's size).
    """

    def __init__(self, path: str, device: str = 'cpu', threads: Optional[int] = None) -> None:
        self.path = path
        if not os.path.isfile(path):
            raise FileNotFoundError(f'{path}: model file not found')
        try:
            self.session = ort_session(path, threads, device=device)
        except RuntimeError:
            raise
        except Exception as e:  # onnxruntime's own exception types
            raise ValueError(f'{path}: ONNX Runtime cannot load it '
                             f'({str(e).strip().splitlines()[0][:200]})') from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if META + 'task' not in meta:
            raise ValueError(f'{path}: not a model exported by tools/deploy/export_onnx.py '
                             f'(no {META}* metadata)')
        if meta.get(META + 'form') != 'end2end':
            raise ValueError(f'{path}: exported with --raw (head outputs only); folder '
                             f'inference and evaluation need the end-to-end export')
        self.task = meta[META + 'task']
        self.classes = json.loads(meta.get(META + 'classes', '[]'))
        self.palette = json.loads(meta.get(META + 'palette', 'null'))
        self.pad_rgb = np.asarray(json.loads(meta.get(META + 'pad_rgb', '[0, 0, 0]')),
                                  np.float32)
        self.align_corners = meta.get(META + 'align_corners') == 'true'
        inputs = self.session.get_inputs()
        self.input_names = [i.name for i in inputs]
        self.input_name = self.input_names[0]
        self.takes_sizes = set(SIZE_INPUTS) <= set(self.input_names)
        dims = inputs[0].shape[2:]
        self.input_hw = tuple(dims) if all(isinstance(d, int) for d in dims) else None
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, batch: np.ndarray, img_hw: Optional[Sequence[int]] = None,
            ori_hw: Optional[Sequence[int]] = None) -> Dict[str, np.ndarray]:
        """Outputs by name for a (N, 3, H, W) float32 RGB batch; segmentation: the resized
        images' size in it and their original size (:func:`size_feeds`)."""
        feeds = size_feeds(self.input_names, batch, img_hw, ori_hw)
        return dict(zip(self.output_names, self.session.run(None, feeds)))

    def canvas(self, images: Sequence[np.ndarray], hw: Optional[Tuple[int, int]] = None
               ) -> Tuple[np.ndarray, List[Tuple[int, int]]]:
        """A batch of (3, h, w) RGB float images: padded at the bottom and right to the
        model's static size (with the value that normalises to 0, as mmdet pads the
        normalised batch) or, for dynamic sizes, to ``hw`` or else the largest of them; and
        each image's own (h, w)."""
        sizes = [tuple(im.shape[1:]) for im in images]
        hw = self.input_hw or hw or tuple(max(s[i] for s in sizes) for i in (0, 1))
        too_big = [s for s in sizes if s[0] > hw[0] or s[1] > hw[1]]
        if too_big:
            raise ValueError(f'{self.path}: images resized to {too_big[0]} exceed the '
                             f'model\'s static input {hw} (export with --shape)')
        batch = np.empty((len(images), 3, *hw), np.float32)
        batch[:] = self.pad_rgb.reshape(1, 3, 1, 1)
        for b, im in zip(batch, images):
            b[:, :im.shape[1], :im.shape[2]] = im
        return batch, sizes

    def detect(self, images: Sequence[np.ndarray], scale_factors: Sequence[Sequence[float]]
               ) -> List[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(boxes, scores, labels) in original pixels for resized (3, h, w) RGB images and
        their resizes' ``scale_factor`` (w, h), in one run."""
        batch, sizes = self.canvas(images)
        out = self.run(batch)
        return [detections(out['dets'][i], out['labels'][i], sizes[i], s)
                for i, s in enumerate(scale_factors)]

    def segment(self, image: np.ndarray, ori_hw: Sequence[int]) -> np.ndarray:
        """The label map (``ori_hw``; uint8 up to 256 classes) of a resized (3, h, w) RGB
        image, run on its own: the graph crops and resizes for ``ori_hw`` as mmseg does."""
        batch, [hw] = self.canvas([image])
        out = self.run(batch, hw, ori_hw)
        if not self.takes_sizes:  # an older export: its labels or logits at the input's size
            return label_map(out, 0, hw, tuple(ori_hw), self.align_corners)
        labels = out['labels'][0]
        return labels.astype(np.uint8 if labels.max(initial=0) < 256 else np.int32)


def detections(dets: np.ndarray, labels: np.ndarray, img_hw: Tuple[int, int],
               scale_factor: Tuple[float, float]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's (boxes, scores, labels) in original pixels from the graph's rows: the
    padding rows dropped, boxes clipped to the resized image (as mmdet clips to its
    ``img_shape``) and divided by the resize's ``scale_factor`` (w, h)."""
    keep = labels >= 0
    boxes = dets[keep, :4].astype(np.float32).copy()
    h, w = img_hw
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
    boxes /= np.asarray(list(scale_factor) * 2, np.float32)
    return boxes, dets[keep, 4].astype(np.float32), labels[keep].astype(np.int64)


def label_map(outputs: Dict[str, np.ndarray], i: int, img_hw: Tuple[int, int],
              ori_hw: Tuple[int, int], align_corners: bool) -> np.ndarray:
    """One image's label map at the original resolution from an export whose outputs are at
    the input's size (made before the graphs took the image sizes): from the ``logits`` when
    it has them (bilinear upsampling then argmax, as mmseg computes it), else the ``labels``
    resized by nearest neighbour."""
    from coordatt_mm.apis.label_maps import resize_labels, upsample_argmax
    h, w = img_hw
    if 'logits' in outputs:
        import torch
        logits = torch.from_numpy(np.ascontiguousarray(outputs['logits'][i, :, :h, :w]))
        return upsample_argmax(logits, ori_hw, align_corners)
    labels = outputs['labels'][i, :h, :w]
    out = resize_labels(labels, ori_hw)
    return out.astype(np.uint8 if out.max(initial=0) < 256 else np.int32)
