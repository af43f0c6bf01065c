"""Independent references for tests, written from the block description in the paper /
FACTS.md and the released key layout -- deliberately not using coordatt_mm's modules."""
from collections import OrderedDict

import torch
import torch.nn.functional as F

STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
          (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def divisible8(v):
    n = max(8, int(v + 4) // 8 * 8)
    return n + 8 if n < 0.9 * v else n


def released_shapes(width=1.0, with_ca=True, classifier='classifier'):
    """Key -> shape of the authors' released MobileNetV2(+CA) classifier at ``width``."""
    shapes = OrderedDict()

    def bn(p, c):
        for leaf in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes[f'{p}.{leaf}'] = (c,)
        shapes[f'{p}.num_batches_tracked'] = ()

    cin = divisible8(32 * width)
    shapes['features.0.0.weight'] = (cin, 3, 3, 3)
    bn('features.0.1', cin)
    idx = 1
    for t, c, n, _ in STAGES:
        cout = divisible8(c * width)
        for _ in range(n):
            p, hid = f'features.{idx}.conv', int(round(cin * t))
            if t == 1:
                shapes[f'{p}.0.weight'] = (hid, 1, 3, 3)
                bn(f'{p}.1', hid)
                shapes[f'{p}.3.weight'] = (cout, hid, 1, 1)
                bn(f'{p}.4', cout)
            else:
                shapes[f'{p}.0.weight'] = (hid, cin, 1, 1)
                bn(f'{p}.1', hid)
                shapes[f'{p}.3.weight'] = (hid, 1, 3, 3)
                bn(f'{p}.4', hid)
                if with_ca:
                    mip = max(8, hid // 32)
                    shapes[f'{p}.6.conv1.weight'] = (mip, hid, 1, 1)
                    shapes[f'{p}.6.conv1.bias'] = (mip,)
                    bn(f'{p}.6.bn1', mip)
                    for k in ('conv2', 'conv3'):
                        shapes[f'{p}.6.{k}.weight'] = (hid, mip, 1, 1)
                        shapes[f'{p}.6.{k}.bias'] = (hid,)
                shapes[f'{p}.7.weight'] = (cout, hid, 1, 1)
                bn(f'{p}.8', cout)
            cin, idx = cout, idx + 1
    head = divisible8(1280 * width) if width > 1.0 else 1280
    shapes['conv.0.weight'] = (head, cin, 1, 1)
    bn('conv.1', head)
    shapes[f'{classifier}.weight'] = (1000, head)
    shapes[f'{classifier}.bias'] = (1000,)
    return shapes


def random_state(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = OrderedDict()
    for k, s in shapes.items():
        if k.endswith('num_batches_tracked'):
            out[k] = torch.tensor(7)
        elif k.endswith('running_var'):
            out[k] = torch.rand(s, generator=g) + 0.5
        elif k.endswith('.weight') and len(s) == 1:  # BN gamma near 1
            out[k] = 1 + 0.1 * torch.randn(s, generator=g)
        else:
            out[k] = 0.1 * torch.randn(s, generator=g)
    return out


def _bn(x, sd, p):
    return F.batch_norm(x, sd[f'{p}.running_mean'], sd[f'{p}.running_var'],
                        sd[f'{p}.weight'], sd[f'{p}.bias'], False, 0.0, 1e-5)


def released_ca(x, sd, p, training=False, momentum=0.1):
    """The released CoordAtt forward on the weights under ``p`` (``conv1``, ``bn1``, ``conv2``
    the H gate, ``conv3`` the W gate): pool, concat, conv-bn-hswish, split, gate. With
    ``training``, BN uses the batch statistics and updates ``sd``'s running ones in place."""
    n, c, h, w = x.shape
    x_h = F.adaptive_avg_pool2d(x, (h, 1))
    x_w = F.adaptive_avg_pool2d(x, (1, w)).permute(0, 1, 3, 2)
    y = F.conv2d(torch.cat([x_h, x_w], 2), sd[f'{p}.conv1.weight'], sd[f'{p}.conv1.bias'])
    y = F.batch_norm(y, sd[f'{p}.bn1.running_mean'], sd[f'{p}.bn1.running_var'],
                     sd[f'{p}.bn1.weight'], sd[f'{p}.bn1.bias'], training, momentum, 1e-5)
    y = y * F.relu6(y + 3) / 6
    y_h, y_w = torch.split(y, [h, w], dim=2)
    a_h = torch.sigmoid(F.conv2d(y_h, sd[f'{p}.conv2.weight'], sd[f'{p}.conv2.bias']))
    a_w = torch.sigmoid(F.conv2d(y_w.permute(0, 1, 3, 2), sd[f'{p}.conv3.weight'],
                                 sd[f'{p}.conv3.bias']))
    return x * a_w * a_h


def released_forward(sd, x, strides=(1, 2, 2, 2, 1, 2, 1), dilations=(1,) * 7,
                     dilation_mode='first_block'):
    """Eval forward of the released layout; returns [stage1..stage7, head conv] outputs.
    A dilated stage dilates its first block only (mmseg) or every block (DeepLab)."""
    x = F.relu6(_bn(F.conv2d(x, sd['features.0.0.weight'], stride=2, padding=1),
                    sd, 'features.0.1'))
    outs, idx = [], 1
    for (t, _, n, _), s, d in zip(STAGES, strides, dilations):
        for j in range(n):
            p, inp = f'features.{idx}.conv', x
            stride = s if j == 0 else 1
            d_blk = d if j == 0 or dilation_mode == 'every_block' else 1
            dw = 0 if t == 1 else 3
            if t != 1:
                x = F.relu6(_bn(F.conv2d(x, sd[f'{p}.0.weight']), sd, f'{p}.1'))
            wdw = sd[f'{p}.{dw}.weight']
            x = F.conv2d(x, wdw, stride=stride, padding=d_blk, dilation=d_blk,
                         groups=wdw.shape[0])
            x = F.relu6(_bn(x, sd, f'{p}.{dw + 1}'))
            if t != 1 and f'{p}.6.conv1.weight' in sd:
                x = released_ca(x, sd, f'{p}.6')
            pw = 3 if t == 1 else 7
            x = _bn(F.conv2d(x, sd[f'{p}.{pw}.weight']), sd, f'{p}.{pw + 1}')
            if stride == 1 and inp.shape[1] == x.shape[1]:
                x = x + inp
            idx += 1
        outs.append(x)
    outs.append(F.relu6(_bn(F.conv2d(x, sd['conv.0.weight']), sd, 'conv.1')))
    return outs


def released_logits(sd, x, classifier='classifier'):
    """The released classifier's eval logits: features, global average pool, Linear."""
    feats = released_forward(sd, x)[-1].mean((2, 3))
    return F.linear(feats, sd[f'{classifier}.weight'], sd[f'{classifier}.bias'])
