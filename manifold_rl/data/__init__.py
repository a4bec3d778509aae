"""Datasets for manifold-rl: LASA handwriting demonstrations in R² and on S² (as in RFMP); offline
SPD / Grassmann / graph datasets for Riemannian batch normalization (connectomes, EMG, karate club,
UEA sets bundled by aeon); earth-science event locations on S² (:mod:`manifold_rl.data.earth`).

See :mod:`manifold_rl.data.lasa` and :mod:`manifold_rl.data.spd_datasets`.
"""

from .earth import EARTH_DATASETS, earth_split, load_earth
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
from .spd_datasets import (
    EMG_GESTURES,
    UEA_DATASETS,
    GraphDataset,
    SPDDataset,
    load_connectomes,
    load_emg_covariances,
    load_emg_subspaces,
    load_karate_graph,
    load_uea_covariances,
)

__all__ = [
    "EARTH_DATASETS",
    "load_earth",
    "earth_split",
    "LASA_SHAPES",
    "LasaShape",
    "lasa_data_dir",
    "load_lasa",
    "SphereEmbedding",
    "EuclideanEmbedding",
    "lasa_on_sphere",
    "lasa_in_plane",
    "SPDDataset",
    "GraphDataset",
    "EMG_GESTURES",
    "UEA_DATASETS",
    "load_connectomes",
    "load_emg_covariances",
    "load_emg_subspaces",
    "load_karate_graph",
    "load_uea_covariances",
]
