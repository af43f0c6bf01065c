"""The authors' MobileNeXt checkpoint layout, written from the block description (FACTS.md /
the paper), independently of coordatt_mm: key -> shape."""
import math
from collections import OrderedDict

STAGES = ((2, 96, 1, 2), (6, 144, 1, 1), (6, 192, 3, 2), (6, 288, 3, 2),
          (6, 384, 4, 1), (6, 576, 4, 2), (6, 960, 3, 1), (6, 1280, 1, 1))


def divisible(v, d):
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


def mobilenext_shapes():
    shapes = OrderedDict()

    def bn(p, c):
        for leaf in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes[f'{p}.{leaf}'] = (c,)
        shapes[f'{p}.num_batches_tracked'] = ()

    cin = 32
    shapes['features.0.0.weight'] = (32, 3, 3, 3)
    bn('features.0.1', 32)
    k = 0
    for t, c, n, s in STAGES:
        for i in range(n):
            k += 1
            p = f'features.{k}.conv'
            hid = divisible(cin / t, 16)
            if hid < c / 6:
                hid = divisible(math.ceil(c / 6), 16)
            full = t == 2 or cin == c or (n == 1 and s == 1)
            stride = s if i == 0 else 1
            j = 0
            if full:  # ConvBNReLU(dw) as a Sequential: .0 conv, .1 bn
                shapes[f'{p}.0.0.weight'] = (cin, 1, 3, 3); bn(f'{p}.0.1', cin)
                j = 1
            shapes[f'{p}.{j}.weight'] = (hid, cin, 1, 1); bn(f'{p}.{j + 1}', hid)
            shapes[f'{p}.{j + 2}.0.weight'] = (c, hid, 1, 1); bn(f'{p}.{j + 2}.1', c)
            if full or stride == 2:
                shapes[f'{p}.{j + 3}.weight'] = (c, 1, 3, 3); bn(f'{p}.{j + 4}', c)
            cin = c
    shapes['classifier.1.weight'] = (1000, 1280)
    shapes['classifier.1.bias'] = (1000,)
    return shapes
