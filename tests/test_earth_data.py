"""Earth-science data loader (manifold_rl.data.earth): parsing, coordinates, split, real files."""

import math

import pytest
import torch

from manifold_rl.data import earth
from manifold_rl.data.earth import EARTH_DATASETS, EARTH_SIZES, earth_data_dir, earth_split, latlon_to_xyz, load_earth, xyz_to_latlon

_REAL = earth._REPO_ROOT.parent / "shared" / "data" / "earth"


def _write(tmp_path, name, text):
    (tmp_path / EARTH_DATASETS[name]).write_text(text)
    return tmp_path


def test_parse_comments_header_and_blank_lines(tmp_path):
    _write(tmp_path, "volcano", "# source: NOAA\n# second comment\nLatitude,Longitude\n0,0\n\n90,10\n-45.5,-135\n")
    x = load_earth("volcano", root=tmp_path)
    assert x.dtype == torch.float64 and x.shape == (3, 3)
    expected = torch.tensor(
        [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [math.cos(math.radians(45.5)) * math.cos(math.radians(-135)),
                                          math.cos(math.radians(45.5)) * math.sin(math.radians(-135)),
                                          -math.sin(math.radians(45.5))]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(x, expected, atol=1e-15, rtol=0)


def test_parse_without_header_and_extra_columns(tmp_path):
    _write(tmp_path, "fire", "# NASA FIRMS\n10,20,extra\n-10,200\n")
    x = load_earth("fire", root=tmp_path)
    assert x.shape == (2, 3)
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(2, dtype=torch.float64), atol=1e-15, rtol=0)
    lat, lon = xyz_to_latlon(x)
    torch.testing.assert_close(lat, torch.tensor([10.0, -10.0], dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(lon, torch.tensor([20.0, -160.0], dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    "text, line",
    [
        ("lat,long\n1,2\nfoo,3\n", 3),  # non-numeric row after the header
        ("# c\n1,2\nlat,long\n", 3),  # a header that is not first
        ("1,2\n3\n", 2),  # one column only
        ("lat,lon\n95,0\n", 2),  # latitude out of range
        ("lat,lon\n10,nan\n", 2),  # NaN
    ],
)
def test_malformed_rows_name_the_line(tmp_path, text, line):
    _write(tmp_path, "flood", text)
    with pytest.raises(ValueError, match=f"line {line}"):
        load_earth("flood", root=tmp_path)


def test_empty_file_and_unknown_name(tmp_path):
    _write(tmp_path, "earthquake", "# only comments\nLATITUDE,LONGITUDE\n")
    with pytest.raises(ValueError, match="no data rows"):
        load_earth("earthquake", root=tmp_path)
    with pytest.raises(ValueError, match="unknown earth dataset 'moon'"):
        load_earth("moon", root=tmp_path)


def test_missing_file_lists_places_and_sources(tmp_path, monkeypatch):
    monkeypatch.setenv(earth.ENV_VAR, str(tmp_path / "env_dir"))
    with pytest.raises(FileNotFoundError) as e:
        load_earth("volcano", root=tmp_path / "nowhere")
    msg = str(e.value)
    assert str(tmp_path / "nowhere") in msg and "NOAA" in msg and "riemannian-score-sde" in msg
    # root given: only root is looked at
    assert "env_dir" not in msg
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(earth, "_REPO_ROOT", tmp_path / "repo")
    with pytest.raises(FileNotFoundError) as e:
        load_earth("fire")
    msg = str(e.value)
    assert "env_dir" in msg and str(tmp_path / "shared") in msg and "NASA" in msg and earth.ENV_VAR in msg


def test_environment_variable_is_used(tmp_path, monkeypatch):
    _write(tmp_path, "volcano", "1,2\n3,4\n")
    monkeypatch.setenv(earth.ENV_VAR, str(tmp_path))
    monkeypatch.setattr(earth, "_REPO_ROOT", tmp_path / "repo")
    assert earth_data_dir(name="volcano") == tmp_path
    assert load_earth("volcano").shape == (2, 3)


def test_latlon_roundtrip():
    g = torch.Generator().manual_seed(0)
    lat = torch.rand(1000, generator=g, dtype=torch.float64) * 178 - 89
    lon = torch.rand(1000, generator=g, dtype=torch.float64) * 358 - 179
    la, lo = xyz_to_latlon(latlon_to_xyz(lat, lon))
    torch.testing.assert_close(la, lat, atol=1e-10, rtol=0)
    torch.testing.assert_close(lo, lon, atol=1e-10, rtol=0)


def test_split_sizes_disjoint_and_reproducible():
    x = torch.arange(827, dtype=torch.float64)[:, None]
    tr, va, te = earth_split(x, seed=3)
    assert (tr.shape[0], va.shape[0], te.shape[0]) == (661, 82, 84)
    allv = torch.cat([tr, va, te]).squeeze(-1).sort().values
    assert torch.equal(allv, x.squeeze(-1))
    tr2, va2, te2 = earth_split(x, seed=3)
    assert torch.equal(tr, tr2) and torch.equal(te, te2)
    tr3, _, _ = earth_split(x, seed=4)
    assert not torch.equal(tr, tr3)
    with pytest.raises(ValueError, match="fractions"):
        earth_split(x, 0, fractions=(0.9, 0.2))
    with pytest.raises(ValueError, match="at least 3"):
        earth_split(x[:2], 0)


@pytest.mark.skipif(not _REAL.is_dir(), reason=f"real earth data folder {_REAL} absent (not in a clean checkout)")
@pytest.mark.parametrize("name", sorted(EARTH_DATASETS))
def test_real_files_counts(name):
    x = load_earth(name, root=_REAL)
    assert x.shape == (EARTH_SIZES[name], 3)
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(x.shape[0], dtype=torch.float64), atol=1e-14, rtol=0)
    # first data row of each file, read by hand from the files
    first = {"volcano": (-30.2, -178.47), "earthquake": (31.1, 35.5), "flood": (35.8142, 5.23026), "fire": (-25.088, 152.358)}[name]
    torch.testing.assert_close(x[0], latlon_to_xyz(torch.tensor(first[0], dtype=torch.float64), torch.tensor(first[1], dtype=torch.float64)))
