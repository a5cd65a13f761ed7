"""The annual CNN's input schema: which variables it reads, their units, and the forest types.

One place for these facts. The CNN modules read them from here; the tower reader
(:func:`unique_xr.towers.forest.forest_table`) writes its tables in this schema and keeps only
which tower columns stand in for each input. This module imports nothing from unique_xr.
"""

from __future__ import annotations

__all__ = ["ANNUAL_UNITS", "FOREST_TYPES", "INPUTS"]

#: IGBP forest classes, in the order the CNN's forest-type columns use.
FOREST_TYPES: tuple[str, ...] = ("ENF", "EBF", "DNF", "DBF", "MF")
#: Units of the annual sums (targets and predictions).
ANNUAL_UNITS = "g m-2 yr-1"

#: The time-varying inputs, in the order of the shipped configuration: name -> units, the input of
#: the paper (Wu, EGU2020-2135) it stands for, and a note for the model card.
INPUTS: dict[str, dict[str, str]] = {
    "lai": {"units": "m2 m-2", "paper": "NDVI",
            "note": "remote-sensing leaf area index stands in for NDVI (no NDVI column in the tables)"},
    "evi": {"units": "1", "paper": "EVI", "note": "EVI as given in the table"},
    "et": {"units": "mm d-1", "paper": "ET",
           "note": "tower latent heat (energy-balance corrected where available) / 2.45e6 J kg-1"},
    "t_day": {"units": "degC", "paper": "LSTD",
              "note": "daytime air temperature stands in for daytime land-surface temperature"},
    "t_night": {"units": "degC", "paper": "LSTN",
                "note": "night-time air temperature from the 24-h and daytime means and the day length "
                        "stands in for night-time land-surface temperature"},
    "precip": {"units": "mm d-1", "paper": "precipitation",
               "note": "precipitation (ERA-Interim downscaled where the table has it)"},
}
