"""Earth-science event locations on the sphere S² (the standard density-estimation benchmark).

Four point sets of latitude/longitude pairs, used by Mathieu & Nickel, "Riemannian Continuous
Normalizing Flows", NeurIPS 2020; De Bortoli et al., "Riemannian Score-Based Generative
Modelling", NeurIPS 2022 (RSGM); Chen & Lipman, "Flow Matching on General Geometries", ICLR 2024
(RFM):

=============  ==================  ======  =============================================
name           file                points  original source
=============  ==================  ======  =============================================
``volcano``    ``volerup.csv``        827  NOAA NGDC significant volcanic eruptions
``earthquake`` ``quakes_all.csv``    6120  NOAA NGDC significant earthquakes
``flood``      ``flood.csv``         4875  Dartmouth Flood Observatory (DFO) archive
``fire``       ``fire.csv``         12809  NASA FIRMS active-fire data
=============  ==================  ======  =============================================

The CSV files are those of the public repository ``oxcsml/riemannian-score-sde`` (folder
``data/``). They are **not** shipped with manifold-rl: :func:`load_earth` reads them from a
folder given as an argument, the environment variable ``MANIFOLD_RL_EARTH_DATA``, or
``../shared/data/earth`` (relative to the repository and to the current directory).

File format: lines starting with ``#`` are comments; an optional first non-comment line that is
not numeric is a header (``Latitude,Longitude``); every other line is ``latitude,longitude`` in
degrees (further columns are ignored).

Coordinates: latitude φ and longitude λ (degrees) become the unit vector
``x = cos φ cos λ``, ``y = cos φ sin λ``, ``z = sin φ`` (x towards (0°N, 0°E), z towards the north
pole). Densities on these points are with respect to the surface measure of the unit sphere
(area 4π; the uniform log-density is ``−log 4π ≈ −2.531``).

Split: :func:`earth_split` is the papers' protocol — a random 80/10/10 train/validation/test
split per seed (the published numbers are means over 5 seeds; each paper used its own splits).

Example:
    >>> x = load_earth("volcano")                  # doctest: +SKIP
    >>> train, val, test = earth_split(x, seed=0)  # doctest: +SKIP
    >>> x.shape, train.shape[0], val.shape[0], test.shape[0]  # doctest: +SKIP
    (torch.Size([827, 3]), 661, 82, 84)
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import torch

__all__ = ["EARTH_DATASETS", "EARTH_SIZES", "earth_data_dir", "load_earth", "latlon_to_xyz", "xyz_to_latlon", "earth_split"]

#: Dataset name -> file name in the data folder.
EARTH_DATASETS: Dict[str, str] = {
    "volcano": "volerup.csv",
    "earthquake": "quakes_all.csv",
    "flood": "flood.csv",
    "fire": "fire.csv",
}

#: Number of points of each dataset (the counts of the published benchmark).
EARTH_SIZES: Dict[str, int] = {"volcano": 827, "earthquake": 6120, "flood": 4875, "fire": 12809}

ENV_VAR = "MANIFOLD_RL_EARTH_DATA"
_REPO_ROOT = Path(__file__).resolve().parents[2]

_WHERE_FROM = (
    "The earth-science CSVs (volerup.csv, quakes_all.csv, flood.csv, fire.csv) are public records of "
    "NOAA NGDC (volcanoes, earthquakes), the Dartmouth Flood Observatory (floods) and NASA FIRMS (fires); "
    "a ready copy is in the folder data/ of the GitHub repository oxcsml/riemannian-score-sde. Put them in "
    f"a folder and pass it as `root`, or set the environment variable {ENV_VAR}."
)


def _candidates(root: Optional[Union[str, os.PathLike]]) -> List[Path]:
    if root is not None:
        return [Path(root)]
    out = []
    env = os.environ.get(ENV_VAR)
    if env:
        out.append(Path(env))
    out.append(_REPO_ROOT.parent / "shared" / "data" / "earth")
    out.append(Path.cwd().parent / "shared" / "data" / "earth")
    out.append(Path.cwd() / "shared" / "data" / "earth")
    seen, uniq = set(), []
    for p in out:
        key = str(p.resolve()) if p.exists() else str(p)
        if key not in seen:
            seen.add(key)
            uniq.append(p)
    return uniq


def earth_data_dir(root: Optional[Union[str, os.PathLike]] = None, name: Optional[str] = None) -> Path:
    """The folder holding the earth CSVs.

    Looks, in this order, at ``root`` (only there when given), ``$MANIFOLD_RL_EARTH_DATA``,
    ``<repository>/../shared/data/earth``, ``<cwd>/../shared/data/earth`` and
    ``<cwd>/shared/data/earth``; the first folder that exists (and holds the file of ``name``,
    when given) wins.

    Raises:
        FileNotFoundError: no such folder; the message lists every place looked at and where the
            data come from.
    """
    tried = []
    for d in _candidates(root):
        target = d / EARTH_DATASETS[name] if name is not None else d
        tried.append(str(target))
        if d.is_dir() and target.exists():
            return d
    what = f"the file {EARTH_DATASETS[name]!r} of dataset {name!r}" if name is not None else "the earth data folder"
    raise FileNotFoundError(f"could not find {what}; looked at: {', '.join(tried)}. {_WHERE_FROM}")


def latlon_to_xyz(lat_deg: torch.Tensor, lon_deg: torch.Tensor) -> torch.Tensor:
    """Unit vectors ``(cos φ cos λ, cos φ sin λ, sin φ)`` from latitude φ / longitude λ in degrees.

    Args:
        lat_deg, lon_deg: ``(*batch,)`` degrees (broadcast).

    Returns:
        ``(*batch, 3)`` unit vectors, in the dtype of the inputs.
    """
    lat = torch.deg2rad(lat_deg)
    lon = torch.deg2rad(lon_deg)
    c = torch.cos(lat)
    return torch.stack(torch.broadcast_tensors(c * torch.cos(lon), c * torch.sin(lon), torch.sin(lat)), dim=-1)


def xyz_to_latlon(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`latlon_to_xyz`: ``(lat, lon)`` in degrees, lat ∈ [−90, 90], lon ∈ (−180, 180]."""
    lat = torch.rad2deg(torch.atan2(x[..., 2], torch.linalg.vector_norm(x[..., :2], dim=-1)))
    lon = torch.rad2deg(torch.atan2(x[..., 1], x[..., 0]))
    return lat, lon


def _parse(path: Path) -> torch.Tensor:
    rows = []
    first_data_line = True
    with open(path, "r", encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = [p.strip() for p in line.split(",")]
            try:
                if len(parts) < 2:
                    raise ValueError
                lat, lon = float(parts[0]), float(parts[1])
            except ValueError:
                if first_data_line:  # a non-numeric header row
                    first_data_line = False
                    continue
                raise ValueError(
                    f"{path}: line {lineno}: expected 'latitude,longitude' in degrees, got {line[:80]!r}"
                ) from None
            first_data_line = False
            if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90.0 or abs(lon) > 360.0:
                raise ValueError(
                    f"{path}: line {lineno}: latitude must be in [-90, 90] and longitude in [-360, 360] degrees, "
                    f"got {lat}, {lon}"
                )
            rows.append((lat, lon))
    if not rows:
        raise ValueError(f"{path}: no data rows (expected lines 'latitude,longitude' in degrees)")
    return torch.tensor(rows, dtype=torch.float64)


def load_earth(name: str, root: Optional[Union[str, os.PathLike]] = None) -> torch.Tensor:
    """Load one earth-science dataset as unit vectors on S².

    Args:
        name: ``"volcano"``, ``"earthquake"``, ``"flood"`` or ``"fire"``.
        root: folder holding the CSVs; default: see :func:`earth_data_dir`.

    Returns:
        ``(N, 3)`` float64 unit vectors (see the module docstring for the convention), N = 827 /
        6120 / 4875 / 12809 for the published files.

    Raises:
        ValueError: unknown ``name``; a malformed row (the message gives the file and line number);
            a latitude outside [−90, 90]; an empty file.
        FileNotFoundError: the file is not in any of the places looked at (all are listed).
    """
    if name not in EARTH_DATASETS:
        raise ValueError(f"unknown earth dataset {name!r}; expected one of {sorted(EARTH_DATASETS)}")
    d = earth_data_dir(root, name)
    ll = _parse(d / EARTH_DATASETS[name])
    return latlon_to_xyz(ll[:, 0], ll[:, 1])


def earth_split(x: torch.Tensor, seed: int, fractions: Tuple[float, float] = (0.8, 0.1)) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random train/validation/test split (80/10/10 by default), the protocol of RSGM and RFM.

    A permutation from ``torch.randperm(N, generator=torch.Generator().manual_seed(seed))``;
    the first ``floor(0.8 N)`` points are the training set, the next ``floor(0.1 N)`` the
    validation set and the rest (``N − n_train − n_val``) the test set. The same seed gives the
    same split on every machine (CPU generator).

    Args:
        x: ``(N, ...)`` points.
        seed: integer seed.
        fractions: ``(train, val)`` fractions; the test set gets the rest.

    Returns:
        ``(train, val, test)`` views of ``x`` indexed along dim 0.

    Raises:
        ValueError: fractions not positive or summing to ≥ 1; fewer than 3 points.
    """
    ftr, fva = float(fractions[0]), float(fractions[1])
    if ftr <= 0 or fva <= 0 or ftr + fva >= 1:
        raise ValueError(f"fractions must be positive with train + val < 1, got {fractions}")
    n = x.shape[0]
    if n < 3:
        raise ValueError(f"need at least 3 points to split, got {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed))).to(x.device)
    ntr = max(1, int(math.floor(ftr * n)))
    nva = max(1, int(math.floor(fva * n)))
    return x[perm[:ntr]], x[perm[ntr : ntr + nva]], x[perm[ntr + nva :]]
