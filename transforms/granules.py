"""Sentinel-5P granule file names: parse, build, and order versions of one acquisition.

``S5P_OFFL_L2__NO2____20200303T013547_20200303T031717_12367_01_010302_20200306T053815.nc`` is
mission, processing mode, product type, sensing start/end (UTC), absolute orbit, collection,
processor version (``010302`` = 1.3.2) and production time (UTC).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import PurePath

from transforms.errors import GranuleNameError

GRANULE_PATTERN = re.compile(
    r"S5P_(?P<mode>[A-Z]{4})_(?P<product_type>L(?P<level>\d)_(?P<product>.{7}))"
    r"_(?P<start>\d{8}T\d{6})_(?P<end>\d{8}T\d{6})_(?P<orbit>\d{5})_(?P<collection>\d{2})"
    r"_(?P<processor_version>\d{6})_(?P<production_time>\d{8}T\d{6})\.nc"
)
"""The file-name regex of the stactools sentinel5p package."""

EXAMPLE_NAME = "S5P_OFFL_L2__NO2____20200303T013547_20200303T031717_12367_01_010302_20200306T053815.nc"

MODES: tuple[str, ...] = ("NRTI", "OFFL", "RPRO")
"""Processing modes, lowest precedence first: RPRO > OFFL > NRTI."""

MODE_NAMES = {"NRTI": "Near-realtime", "OFFL": "Offline", "RPRO": "Reprocessing"}
"""``/METADATA/GRANULE_DESCRIPTION/ProcessingMode`` spelled out for each mode."""

_TIME_FORMAT = "%Y%m%dT%H%M%S"


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    """An aware UTC datetime; naive values are taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def product_short_name(product_type: str) -> str:
    """Planetary Computer's short name of a type: ``L2__NO2___`` → ``no2``, ``L2__AER_AI`` → ``aer-ai``."""
    return product_type[4:].strip("_").lower().replace("_", "-")


@dataclass(frozen=True)
class GranuleName:
    """The parts of an S5P granule file name. Times are tz-aware UTC."""

    mode: str  # NRTI, OFFL or RPRO
    product_type: str  # "L2__NO2___"
    product: str  # lowercase short name: "no2"
    start: datetime
    end: datetime
    orbit: int
    collection: str  # "01"
    processor_version: str  # "010302"
    production_time: datetime

    @property
    def id(self) -> str:
        """The file stem, which is also the granule's global ``id`` attribute and its STAC item id."""
        return "_".join(
            (
                "S5P",
                self.mode,
                self.product_type,
                self.start.strftime(_TIME_FORMAT),
                self.end.strftime(_TIME_FORMAT),
                f"{self.orbit:05d}",
                self.collection,
                self.processor_version,
                self.production_time.strftime(_TIME_FORMAT),
            )
        )

    @property
    def filename(self) -> str:
        return f"{self.id}.nc"

    @property
    def level(self) -> str:
        """``"L2"``."""
        return self.product_type[:2]

    @property
    def processor_version_dotted(self) -> str:
        """``"010302"`` → ``"1.3.2"``, the spelling of the ``processor_version`` global attribute."""
        v = self.processor_version
        return f"{int(v[0:2])}.{int(v[2:4])}.{int(v[4:6])}"

    @property
    def processing_mode_name(self) -> str:
        """``"Offline"`` for OFFL, as in ``/METADATA/GRANULE_DESCRIPTION/ProcessingMode``."""
        return MODE_NAMES.get(self.mode, self.mode)

    @property
    def version_key(self) -> tuple[int, str, datetime]:
        """Sorts versions of one acquisition, best last: mode (RPRO > OFFL > NRTI), processor, production."""
        rank = MODES.index(self.mode) if self.mode in MODES else -1
        return (rank, self.processor_version, self.production_time)

    @property
    def acquisition_key(self) -> tuple[str, int, datetime | None]:
        """What makes two files versions of one acquisition: (product, orbit, start for NRTI else None).

        NRTI granules are ~5-minute pieces of an orbit, so each piece is its own acquisition; an OFFL or
        RPRO file covers the whole orbit. To drop NRTI pieces once the orbit's OFFL file exists, compare
        :attr:`orbit_key` instead.
        """
        return (self.product, self.orbit, self.start if self.mode == "NRTI" else None)

    @property
    def orbit_key(self) -> tuple[str, int]:
        """(product, orbit): shared by every granule of one orbit, whatever its mode."""
        return (self.product, self.orbit)


def parse_granule_name(name_or_path: str | os.PathLike[str]) -> GranuleName:
    """Parse an S5P file name, path or URL (a trailing ``.nc`` is optional; a bare id is accepted)."""
    text = os.fspath(name_or_path)
    base = PurePath(text.split("?", 1)[0].rstrip("/")).name
    if not base.endswith(".nc"):
        base += ".nc"
    match = GRANULE_PATTERN.fullmatch(base)
    if match is None:
        raise GranuleNameError(
            f"{text!r} is not a Sentinel-5P granule name: expected "
            "S5P_<MODE>_<PRODUCT_TYPE>_<start>_<end>_<orbit>_<collection>_<processor>_<production>.nc, e.g. "
            f"{EXAMPLE_NAME} (pattern {GRANULE_PATTERN.pattern})"
        )
    parts = match.groupdict()
    try:
        start, end, produced = (_parse_time(parts[k]) for k in ("start", "end", "production_time"))
    except ValueError as err:
        raise GranuleNameError(
            f"{text!r} has an impossible date or time ({err}); expected YYYYMMDDThhmmss"
        ) from err
    if end < start:
        raise GranuleNameError(f"{text!r} ends before it starts; check the sensing start and end times")
    return GranuleName(
        mode=parts["mode"],
        product_type=parts["product_type"],
        product=product_short_name(parts["product_type"]),
        start=start,
        end=end,
        orbit=int(parts["orbit"]),
        collection=parts["collection"],
        processor_version=parts["processor_version"],
        production_time=produced,
    )


def format_granule_name(
    product: str,
    *,
    start: datetime,
    end: datetime,
    orbit: int,
    mode: str = "OFFL",
    collection: str = "01",
    processor_version: str = "010302",
    production_time: datetime | None = None,
) -> str:
    """Build a granule file name (``….nc``); ``parse_granule_name`` of it gives the parts back.

    ``product`` is a short name (``"no2"``) or a product type (``"L2__NO2___"``); times are UTC (naive
    values are taken as UTC). ``production_time`` defaults to 3 h after ``end`` for NRTI, else 3 days.
    """
    from transforms.products import get_product

    spec_type = (
        product if len(product) == 10 and product.startswith("L") else get_product(product).product_type
    )
    if mode not in MODES:
        raise GranuleNameError(f"unknown processing mode {mode!r}: choose one of {', '.join(MODES)}")
    if not (0 <= orbit <= 99999):
        raise GranuleNameError(f"orbit must be 0..99999 to fit the file name, got {orbit}")
    if not re.fullmatch(r"\d{2}", collection) or not re.fullmatch(r"\d{6}", processor_version):
        raise GranuleNameError(
            f"collection must be two digits and processor_version six (e.g. '01', '010302'), "
            f"got {collection!r}, {processor_version!r}"
        )
    start, end = _utc(start).replace(microsecond=0), _utc(end).replace(microsecond=0)
    if production_time is None:
        production_time = end + (timedelta(hours=3) if mode == "NRTI" else timedelta(days=3))
    name = GranuleName(
        mode=mode,
        product_type=spec_type,
        product=product_short_name(spec_type),
        start=start,
        end=end,
        orbit=orbit,
        collection=collection,
        processor_version=processor_version,
        production_time=_utc(production_time).replace(microsecond=0),
    )
    return parse_granule_name(name.filename).filename  # guarantees the round trip
