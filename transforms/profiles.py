"""Day-of-week and seasonal emission profiles: one home for both tables and the one formula that applies them.

Two sets live here on purpose and must stay distinct: :data:`TRUTH` shapes the built-in truth of the
simulation experiment ("the real world"), :data:`PRIOR` is the emissions method's own prior. An OSSE whose
inversion used the truth's profile would test nothing; the method infers the difference from observations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Profile:
    """Per sector: day-of-week factors Monday..Sunday (normalised to mean 1 when applied) and the seasonal
    amplitude a of the factor 1 + a·cos(2π(doy − 15)/365.25) (sign flipped in the southern hemisphere)."""

    weekly: dict[str, tuple[float, ...]]
    seasonal: dict[str, float]

    def factor(self, dates: pd.DatetimeIndex, sector: str, hemisphere: float) -> np.ndarray:
        """Day-of-week × seasonal factor per date, dims (time,), unitless, mean ~1 over a year."""
        weekly = np.asarray(self.weekly[sector])
        phase = 2.0 * np.pi * (dates.day_of_year.to_numpy() - 15) / 365.25
        out: np.ndarray = weekly[dates.day_of_week.to_numpy()] / weekly.mean()
        seasonal: np.ndarray = 1.0 + hemisphere * self.seasonal[sector] * np.cos(phase)
        factor: np.ndarray = out * seasonal
        return factor


#: The simulated world: weekend dips for Power, Industry and Ground Transport (Sunday ~0.8 of a weekday).
TRUTH = Profile(
    weekly={
        "Power": (1.02, 1.03, 1.03, 1.03, 1.01, 0.93, 0.86),
        "Industry": (1.05, 1.06, 1.06, 1.06, 1.04, 0.90, 0.82),
        "Ground Transport": (1.03, 1.04, 1.04, 1.05, 1.08, 0.93, 0.81),
        "Residential": (1.0, 1.0, 1.0, 1.0, 1.0, 1.02, 1.03),
        "Domestic Aviation": (1.02, 0.97, 0.98, 1.02, 1.05, 0.95, 1.01),
        "International Aviation": (1.0, 0.98, 0.98, 1.01, 1.03, 1.0, 1.0),
    },
    seasonal={
        "Power": 0.08,
        "Industry": 0.03,
        "Ground Transport": -0.04,
        "Residential": 0.45,
        "Domestic Aviation": -0.08,
        "International Aviation": -0.10,
    },
)

#: The emissions method's prior (independent of :data:`TRUTH`, deliberately flatter).
PRIOR = Profile(
    weekly={
        "Power": (1.03, 1.03, 1.03, 1.03, 1.01, 0.95, 0.88),
        "Industry": (1.05, 1.05, 1.05, 1.05, 1.03, 0.93, 0.84),
        "Ground Transport": (1.03, 1.03, 1.04, 1.05, 1.07, 0.95, 0.83),
        "Residential": (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
        "Domestic Aviation": (1.02, 0.98, 0.98, 1.02, 1.04, 0.96, 1.0),
        "International Aviation": (1.0, 0.99, 0.99, 1.0, 1.02, 1.0, 1.0),
    },
    seasonal={
        "Power": 0.06,
        "Industry": 0.02,
        "Ground Transport": -0.03,
        "Residential": 0.40,
        "Domestic Aviation": -0.06,
        "International Aviation": -0.08,
    },
)
