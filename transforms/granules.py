"""Granule file names of every product family: parse, build, and order versions of one acquisition.

``S5P_OFFL_L2__NO2____20200303T013547_20200303T031717_12367_01_010302_20200306T053815.nc`` is
mission, processing mode, product type, sensing start/end (UTC), absolute orbit, collection,
processor version (``010302`` = 1.3.2) and production time (UTC).

The other families (verified: the ACOS Lite name from a GES DISC OPeNDAP listing, the OCO-2 Lite and TanSat
patterns from the formats note; assumed: the NIES name):

- OCO-2/OCO-3/ACOS Lite FP: ``oco2_LtCO2_201231_B11014Ar_220729012824s.nc4`` = mission, day (YYMMDD), build
  (``B11014A``, release letter ``r``), production time (YYMMDDhhmmss); ACOS names may carry a
  ``_v201202`` part before the build (kept as ``collection``). One file per UTC day. Newer build wins,
  then later production.
- NIES GOSAT SWIR L2: ``GOSATTFTS2020030120200301_02C01SV0295R20210615.h5`` (assumed) = sensing first
  and last day, level ``02``, product ``C01S`` (CO2), version ``V0295`` (02.95), optional revision
  ``R`` + production date. Higher version wins, then later revision.
- TanSat XCO2 lite: ``TanSat_ACGS_SCI_ND_L2_XCO2_lite_20170301.nc`` = observation mode (``ND`` nadir,
  ``GL`` glint; each its own acquisition) and day. No version in the name.

For these, :class:`GranuleName` keeps the file stem and extension (``id``/``filename`` are the real name),
``orbit`` is 0, ``mode`` the observation mode (TanSat) or empty, ``processor_version`` the build/version.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, lru_cache

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

OCO_LITE_PATTERN = re.compile(
    r"(?P<mission>oco2|oco3|acos)_LtCO2_(?P<day>\d{6})(?:_(?P<collection>v\d+))?"
    r"_(?P<build>B\d{4,6}[A-Z]?)(?P<release>r?)_(?P<production>\d{12})s\.nc4"
)
"""OCO-2/OCO-3/ACOS-GOSAT Lite FP daily files (GES DISC)."""

NIES_PATTERN = re.compile(
    r"GOSATTFTS(?P<first>\d{8})(?P<last>\d{8})_(?P<level>\d{2})(?P<code>C01S)"
    r"V(?P<version>\d{4})(?:R(?P<revision>\d{6,14}))?\.h5"
)
"""NIES GOSAT TANSO-FTS SWIR L2 CO2 (C01S) files (assumed pattern)."""

TANSAT_PATTERN = re.compile(r"TanSat_ACGS_SCI_(?P<mode>ND|GL)_L2_XCO2_lite_(?P<day>\d{8})\.nc")
"""TanSat ACGS XCO2 lite daily files."""

_OCO_PRODUCTS = {"oco2": "oco2-xco2", "oco3": "oco3-xco2", "acos": "acos-xco2"}
_OCO_TYPES = {"oco2": "OCO2_L2_Lite_FP", "oco3": "OCO3_L2_Lite_FP", "acos": "ACOS_L2_Lite_FP"}


def _parse_time(text: str) -> datetime:
    """``YYYYMMDDThhmmss`` (digits already checked by the name's regex) as UTC; ValueError for an impossible
    date or time. Slices and ``int``: ``strptime`` cost ~5× more, three times per name of a 10,000-item
    listing."""
    return datetime(
        int(text[0:4]),
        int(text[4:6]),
        int(text[6:8]),
        int(text[9:11]),
        int(text[11:13]),
        int(text[13:15]),
        tzinfo=UTC,
    )


def _format_time(t: datetime) -> str:
    """``YYYYMMDDThhmmss`` (as ``strftime(_TIME_FORMAT)``, at half its cost)."""
    return f"{t.year:04d}{t.month:02d}{t.day:02d}T{t.hour:02d}{t.minute:02d}{t.second:02d}"


def _utc(value: datetime) -> datetime:
    """An aware UTC datetime; naive values are taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@lru_cache(maxsize=64)
def product_short_name(product_type: str) -> str:
    """Planetary Computer's short name of a type: ``L2__NO2___`` → ``no2``, ``L2__AER_AI`` → ``aer-ai``."""
    return product_type[4:].strip("_").lower().replace("_", "-")


@dataclass(frozen=True)
class GranuleName:
    """The parts of a granule file name. Times are tz-aware UTC.

    Non-S5P families (``family`` != ``"s5p"``) also carry the real file ``stem`` and ``extension``."""

    mode: str  # S5P: NRTI, OFFL or RPRO; TanSat: ND or GL; else ""
    product_type: str  # "L2__NO2___", "OCO2_L2_Lite_FP", ...
    product: str  # lowercase short name: "no2", "oco2-xco2"
    start: datetime
    end: datetime
    orbit: int  # 0 for daily files
    collection: str  # S5P "01"; ACOS "v201202" or ""
    processor_version: str  # S5P "010302"; OCO build "B11014A"; NIES "0295"; TanSat ""
    production_time: datetime
    family: str = "s5p"
    stem: str = ""  # non-S5P: the file name without its extension
    extension: str = ".nc"

    @cached_property
    def id(self) -> str:
        """The file stem, which is also the granule's global ``id`` attribute and its STAC item id (formatted
        once per name)."""
        if self.family != "s5p":
            return self.stem
        return "_".join(
            (
                "S5P",
                self.mode,
                self.product_type,
                _format_time(self.start),
                _format_time(self.end),
                f"{self.orbit:05d}",
                self.collection,
                self.processor_version,
                _format_time(self.production_time),
            )
        )

    @property
    def filename(self) -> str:
        return f"{self.id}{self.extension}"

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
        """Sorts versions of one acquisition, best last: mode (RPRO > OFFL > NRTI), processor, production.

        OCO builds compare by number (``B9213A`` < ``B10206A`` < ``B11014A``), NIES by version then
        revision; the production time breaks ties."""
        if self.family != "s5p":
            return (0, _version_number(self.processor_version), self.production_time)
        rank = MODES.index(self.mode) if self.mode in MODES else -1
        return (rank, self.processor_version, self.production_time)

    @property
    def acquisition_key(self) -> tuple[str, int | str, datetime | None]:
        """What makes two files versions of one acquisition: (product, orbit, start for NRTI else None).

        NRTI granules are ~5-minute pieces of an orbit, so each piece is its own acquisition; an OFFL or
        RPRO file covers the whole orbit. To drop NRTI pieces once the orbit's OFFL file exists, compare
        :attr:`orbit_key` instead. Daily files (other families): (product, mode or 0, day start).
        """
        if self.family != "s5p":
            return (self.product, self.mode or 0, self.start)
        return (self.product, self.orbit, self.start if self.mode == "NRTI" else None)

    @property
    def orbit_key(self) -> tuple[str, int]:
        """(product, orbit): shared by every granule of one orbit, whatever its mode."""
        return (self.product, self.orbit)


def _version_number(text: str) -> str:
    """A sortable form of a build/version: digits zero-padded to 12, then the rest (``B11014A`` →
    ``000000011014A``)."""
    m = re.fullmatch(r"[A-Za-z]*(\d+)(.*)", text)
    return f"{int(m.group(1)):012d}{m.group(2)}" if m else text


def _day(text: str, fmt: str, label: str) -> datetime:
    try:
        return datetime.strptime(text, fmt).replace(tzinfo=UTC)
    except ValueError as err:
        raise GranuleNameError(f"{label!r} has an impossible date ({err})") from err


def _parse_other(base: str, text: str) -> GranuleName | None:
    """Parse a non-S5P name (OCO/ACOS Lite, NIES, TanSat); None when it is none of them."""
    if m := OCO_LITE_PATTERN.fullmatch(base):
        start = _day(m["day"], "%y%m%d", text)
        return GranuleName(
            mode="",
            product_type=_OCO_TYPES[m["mission"]],
            product=_OCO_PRODUCTS[m["mission"]],
            start=start,
            end=start + timedelta(days=1),
            orbit=0,
            collection=m["collection"] or "",
            processor_version=m["build"],
            production_time=_day(m["production"], "%y%m%d%H%M%S", text),
            family="oco_lite",
            stem=base.removesuffix(".nc4"),
            extension=".nc4",
        )
    if m := NIES_PATTERN.fullmatch(base):
        first, last = _day(m["first"], "%Y%m%d", text), _day(m["last"], "%Y%m%d", text)
        if last < first:
            raise GranuleNameError(f"{text!r} ends before it starts; check the sensing days")
        revision = m["revision"] or ""
        produced = _day(revision[:8], "%Y%m%d", text) if len(revision) >= 8 else last + timedelta(days=1)
        return GranuleName(
            mode="",
            product_type=m["code"],
            product="gosat-xco2",
            start=first,
            end=last + timedelta(days=1),
            orbit=0,
            collection=m["level"],
            processor_version=m["version"],
            production_time=produced,
            family="gosat_nies",
            stem=base.removesuffix(".h5"),
            extension=".h5",
        )
    if m := TANSAT_PATTERN.fullmatch(base):
        start = _day(m["day"], "%Y%m%d", text)
        return GranuleName(
            mode=m["mode"],
            product_type="TanSat_ACGS_L2_XCO2_lite",
            product="tansat-xco2",
            start=start,
            end=start + timedelta(days=1),
            orbit=0,
            collection="",
            processor_version="",
            production_time=start + timedelta(days=1),
            family="tansat_lite",
            stem=base.removesuffix(".nc"),
            extension=".nc",
        )
    return None


def parse_granule_name(name_or_path: str | os.PathLike[str]) -> GranuleName:
    """Parse a granule file name, path or URL of any family; the extension is optional (a bare id, i.e. the
    file stem, is accepted: ledger rows and STAC items keep ids)."""
    text = os.fspath(name_or_path)
    base = text.split("?", 1)[0].rstrip("/").rpartition("/")[2]
    if not base.startswith("S5P_"):  # no other family's name starts so: S5P names skip their patterns
        for candidate in (base, f"{base}.nc4", f"{base}.h5", f"{base}.nc"):  # a bare id (file stem) too
            other = _parse_other(candidate, text)
            if other is not None:
                return other
    if not base.endswith(".nc"):
        base += ".nc"
    match = GRANULE_PATTERN.fullmatch(base)
    if match is None:
        raise GranuleNameError(
            f"{text!r} is not a granule name of a known product: expected "
            "S5P_<MODE>_<PRODUCT_TYPE>_<start>_<end>_<orbit>_<collection>_<processor>_<production>.nc, e.g. "
            f"{EXAMPLE_NAME} (pattern {GRANULE_PATTERN.pattern}), or an OCO/ACOS Lite "
            "(oco2_LtCO2_201231_B11014Ar_220729012824s.nc4), NIES GOSAT (GOSATTFTS..._02C01SV....h5) or "
            "TanSat (TanSat_ACGS_SCI_ND_L2_XCO2_lite_YYYYMMDD.nc) name"
        )
    try:
        start, end = _parse_time(match["start"]), _parse_time(match["end"])
        produced = _parse_time(match["production_time"])
    except ValueError as err:
        raise GranuleNameError(
            f"{text!r} has an impossible date or time ({err}); expected YYYYMMDDThhmmss"
        ) from err
    if end < start:
        raise GranuleNameError(f"{text!r} ends before it starts; check the sensing start and end times")
    product_type = match["product_type"]
    return GranuleName(
        mode=match["mode"],
        product_type=product_type,
        product=product_short_name(product_type),
        start=start,
        end=end,
        orbit=int(match["orbit"]),
        collection=match["collection"],
        processor_version=match["processor_version"],
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


def format_oco_lite_name(
    product: str, *, day: date, build: str = "B11014A", production_time: datetime, release: str = "r"
) -> str:
    """An OCO-2/OCO-3/ACOS Lite file name (``product``: ``oco2-xco2``, ``oco3-xco2`` or ``acos-xco2``);
    ``parse_granule_name`` of it gives the parts back."""
    mission = next((m for m, p in _OCO_PRODUCTS.items() if p == product), None)
    if mission is None:
        raise GranuleNameError(
            f"{product!r} has no Lite file name: choose one of {', '.join(_OCO_PRODUCTS.values())}"
        )
    if not re.fullmatch(r"B\d{4,6}[A-Z]?", build) or release not in ("", "r"):
        raise GranuleNameError(
            f"build must look like B11014A and release be 'r' or '', got {build!r}, {release!r}"
        )
    name = f"{mission}_LtCO2_{day:%y%m%d}_{build}{release}_{_utc(production_time):%y%m%d%H%M%S}s.nc4"
    return parse_granule_name(name).filename


def format_nies_name(*, day: date, version: str = "0295", revision: str = "") -> str:
    """A NIES GOSAT SWIR L2 CO2 file name for one day (``version`` four digits, ``revision`` a production
    date YYYYMMDD or empty)."""
    if not re.fullmatch(r"\d{4}", version) or not re.fullmatch(r"(\d{8})?", revision):
        raise GranuleNameError(
            f"version must be 4 digits and revision YYYYMMDD or empty, got {version!r}, {revision!r}"
        )
    name = f"GOSATTFTS{day:%Y%m%d}{day:%Y%m%d}_02C01SV{version}{'R' + revision if revision else ''}.h5"
    return parse_granule_name(name).filename


def format_tansat_name(*, day: date, mode: str = "ND") -> str:
    """A TanSat XCO2 lite file name (``mode`` ND nadir or GL glint)."""
    if mode not in ("ND", "GL"):
        raise GranuleNameError(f"TanSat mode must be ND (nadir) or GL (glint), got {mode!r}")
    return parse_granule_name(f"TanSat_ACGS_SCI_{mode}_L2_XCO2_lite_{day:%Y%m%d}.nc").filename
