from coordatt_mm.layers.builder import build_attention
from coordatt_mm.layers.cbam import CBAM
from coordatt_mm.layers.coord_att import CoordAtt
from coordatt_mm.layers.eca import ECA
from coordatt_mm.layers.simam import SimAM
from coordatt_mm.layers.squeeze_excitation import SqueezeExcitation
from coordatt_mm.layers.triplet_attention import TripletAttention

__all__ = ['CBAM', 'CoordAtt', 'ECA', 'SimAM', 'SqueezeExcitation', 'TripletAttention',
           'build_attention']
