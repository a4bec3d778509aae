"""Datasets for manifold-rl: LASA handwriting demonstrations in R² and on S² (as in RFMP).

See :mod:`manifold_rl.data.lasa`.
"""

from .lasa import (
    LASA_SHAPES,
    EuclideanEmbedding,
    LasaShape,
    SphereEmbedding,
    lasa_data_dir,
    lasa_in_plane,
    lasa_on_sphere,
    load_lasa,
)

__all__ = [
    "LASA_SHAPES",
    "LasaShape",
    "lasa_data_dir",
    "load_lasa",
    "SphereEmbedding",
    "EuclideanEmbedding",
    "lasa_on_sphere",
    "lasa_in_plane",
]
