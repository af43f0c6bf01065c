from coordatt_mm.layers.builder import build_attention
from coordatt_mm.layers.cbam import CBAM
from coordatt_mm.layers.coord_att import CoordAtt
from coordatt_mm.layers.squeeze_excitation import SqueezeExcitation

__all__ = ['CBAM', 'CoordAtt', 'SqueezeExcitation', 'build_attention']
