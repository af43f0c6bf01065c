"""The authors' MobileNeXt (yitu-opensource/MobileNeXt, mobilenext/codebase/models/mnext.py) as
its checkpoints lay it out, and its eval forward -- written from reading that model file,
independently of coordatt_mm.

Each sandglass block's ``conv`` there is ONE flat nn.Sequential of Conv2d, BatchNorm2d and
ReLU6 modules, so a key is ``features.K.conv.I.<leaf>`` with I the position in that list;
the ReLU6 entries take a position and hold no weights:

- t == 2, or a block that keeps its width, or a one-block stride-1 stage ("keep_3x3"):
  dw 3x3 (0) BN (1) ReLU6 (2) | 1x1 (3) BN (4) | 1x1 (5) BN (6) ReLU6 (7) | dw 3x3 (8) BN (9)
- a stride-2 block that changes width: 1x1 (0) BN (1) | 1x1 (2) BN (3) ReLU6 (4) | dw s2 (5) BN (6)
- a stride-1 block that changes width: 1x1 (0) BN (1) | 1x1 (2) BN (3) ReLU6 (4)

The stem is ``features.0.{0,1}``, the classifier ``classifier.1`` (after a Dropout). Hidden
width: ``inp // t``, raised to ceil(oup / 6) rounded to 16 when below oup / 6. The identity is
added when the block keeps its width (not for keep_3x3 blocks).
"""
import math
from collections import OrderedDict

import torch.nn.functional as F

from reference_mbv2 import _bn, divisible8

STAGES = ((2, 96, 1, 2), (6, 144, 1, 1), (6, 192, 3, 2), (6, 288, 3, 2),
          (6, 384, 4, 1), (6, 576, 4, 2), (6, 960, 3, 1), (6, 1280, 1, 1))


def _divisible(v, d):
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


def blocks():
    """Per block: (inp, oup, hidden, stride, kind, identity) with kind 'full'/'s2'/'s1'."""
    out, inp = [], divisible8(32)
    for t, c, n, s in STAGES:
        oup = divisible8(c)
        for i in range(n):
            stride = s if i == 0 else 1
            keep = n == 1 and s == 1 and i == 0
            hidden = inp // t
            if hidden < oup / 6:
                hidden = _divisible(math.ceil(oup / 6), 16)
            if t == 2:
                kind, identity = 'full', False
            elif inp != oup and stride == 1 and not keep:
                kind, identity = 's1', False
            elif inp != oup and stride == 2:
                kind, identity = 's2', False
            else:
                kind, identity = 'full', not keep
            out.append((inp, oup, hidden, stride, kind, identity))
            inp = oup
    return out


# per kind: (position of conv, its shape as a function of (inp, oup, hidden)); BN follows
_CONVS = {
    'full': [(0, lambda i, o, h: (i, 1, 3, 3)), (3, lambda i, o, h: (h, i, 1, 1)),
             (5, lambda i, o, h: (o, h, 1, 1)), (8, lambda i, o, h: (o, 1, 3, 3))],
    's2': [(0, lambda i, o, h: (h, i, 1, 1)), (2, lambda i, o, h: (o, h, 1, 1)),
           (5, lambda i, o, h: (o, 1, 3, 3))],
    's1': [(0, lambda i, o, h: (h, i, 1, 1)), (2, lambda i, o, h: (o, h, 1, 1))],
}
# positions followed by ReLU6 (the activation sits at the next position)
_RELU_AFTER = {'full': {1, 6}, 's2': {3}, 's1': {3}}


def authors_shapes():
    """Key -> shape of the authors' MobileNeXt-1.0 ImageNet checkpoint."""
    shapes = OrderedDict()

    def bn(p, c):
        for leaf in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes[f'{p}.{leaf}'] = (c,)
        shapes[f'{p}.num_batches_tracked'] = ()

    shapes['features.0.0.weight'] = (32, 3, 3, 3)
    bn('features.0.1', 32)
    for k, (inp, oup, hid, _, kind, _) in enumerate(blocks(), 1):
        for pos, shape in _CONVS[kind]:
            shapes[f'features.{k}.conv.{pos}.weight'] = shape(inp, oup, hid)
            bn(f'features.{k}.conv.{pos + 1}', shape(inp, oup, hid)[0])
    shapes['classifier.1.weight'] = (1000, 1280)
    shapes['classifier.1.bias'] = (1000,)
    return shapes


def authors_forward(sd, x, taps=()):
    """Eval forward of the authors' layout: [outputs of blocks 1..20], plus, for each block in
    ``taps``, its features after the expanding 1x1 conv (+ ReLU6) appended at the end."""
    x = F.relu6(_bn(F.conv2d(x, sd['features.0.0.weight'], stride=2, padding=1), sd,
                    'features.0.1'))
    outs, tapped = [], []
    for k, (inp, oup, hid, stride, kind, identity) in enumerate(blocks(), 1):
        y = x
        for n, (pos, _) in enumerate(_CONVS[kind]):
            w = sd[f'features.{k}.conv.{pos}.weight']
            depthwise = w.shape[1] == 1 and w.shape[2] == 3
            last_dw = depthwise and n == len(_CONVS[kind]) - 1
            y = F.conv2d(y, w, stride=stride if last_dw else 1, padding=1 if depthwise else 0,
                         groups=w.shape[0] if depthwise else 1)
            y = _bn(y, sd, f'features.{k}.conv.{pos + 1}')
            if pos + 1 in _RELU_AFTER[kind]:
                y = F.relu6(y)
                if k in taps and not depthwise and w.shape[0] == oup:
                    tapped.append(y)
        x = y + x if identity else y
        outs.append(x)
    return outs + tapped


def random_authors_state(seed=0):
    from reference_mbv2 import random_state
    return random_state(authors_shapes(), seed)


def stage_outputs(outs):
    """Block outputs -> the 8 stage outputs (last block of each stage)."""
    ends, k = [], 0
    for _, _, n, _ in STAGES:
        k += n
        ends.append(outs[k - 1])
    return ends


def with_module_prefix(sd):
    """As a DataParallel training script saves it: ``module.`` before every key."""
    return OrderedDict(('module.' + k, v) for k, v in sd.items())
