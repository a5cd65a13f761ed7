"""Fixtures of the annual CNN tests: the real MetaFlux forest table and a tiny trained model."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from unique_xr.models.cnn.featuremap import feature_maps_from_table
from unique_xr.models.cnn.model import CnnConfig, fit_cnn
from unique_xr.towers.forest import annual_fluxes, read_forest_table

METAFLUX = "towers/fluxnet2015_monthly_metaflux_206sites/metaflux_fluxnet2015_monthly.csv.gz"
#: Small enough to train in about a second: for tests of the machinery, not of skill.
TINY = CnnConfig(epochs=3, members=1, channels=8, hidden=16, batch_size=64, seed=0)


@pytest.fixture(scope="session")
def metaflux_path(shared_data):
    return shared_data / METAFLUX


@pytest.fixture(scope="session")
def forest(metaflux_path):
    """The real forest site-months of the MetaFlux table (``read_forest_table``)."""
    return read_forest_table(metaflux_path)


@pytest.fixture(scope="session")
def annual(forest):
    return annual_fluxes(forest)


@pytest.fixture(scope="session")
def forest_maps(forest):
    """Monthly feature maps of every forest site-year of the table."""
    return feature_maps_from_table(forest)


@pytest.fixture(scope="session")
def training_set(forest_maps, annual):
    """Maps and ``(gpp, nee)`` targets of the usable site-years."""
    use = np.flatnonzero(annual["usable"].to_numpy())
    return forest_maps.subset(use), annual.loc[annual["usable"], ["gpp", "nee"]].to_numpy()


@pytest.fixture(scope="session")
def tiny_config():
    return TINY


@pytest.fixture(scope="session")
def tiny_model(training_set):
    """A tiny CNN trained on 120 real site-years (3 epochs): finite outputs, not skill."""
    maps, y = training_set
    return fit_cnn(maps.subset(np.arange(120)), y[:120], TINY)
