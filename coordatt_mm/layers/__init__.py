from coordatt_mm.layers.coord_att import CoordAtt

__all__ = ["CoordAtt"]
