"""The L2 products eolake knows, as frozen specs.

A :class:`ProductSpec` names the variables a reader takes from a granule and the recommended quality rule;
everything product-specific elsewhere (file layout, STAC asset titles, cube origin, default grid) is read
from here. Products come in *families*, one reader and one file-name pattern each:

- ``s5p``: ``no2``, ``co``, ``ch4`` — S5P TROPOMI L2 netCDF4 (``transforms/s5p.py``);
- ``oco_lite``: ``oco2-xco2``, ``oco3-xco2``, ``acos-xco2`` — OCO-2/OCO-3/ACOS-GOSAT Lite FP daily netCDF4
  (``transforms/oco.py``);
- ``gosat_nies``: ``gosat-xco2`` — NIES GOSAT TANSO-FTS SWIR L2 HDF5 (``transforms/gosat.py``);
- ``tansat_lite``: ``tansat-xco2`` — TanSat ACGS XCO2 lite daily netCDF4 (``transforms/tansat.py``).

XCO2 products' quality rule is a flag (``qa_flag_good``): their readers report ``qa`` = 1 where the flag
equals the good value and 0 elsewhere, so the one rule of the standard observations (``qa > qa_threshold``)
keeps exactly the flagged-good soundings.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from transforms.errors import UnknownProductError

FAMILIES: tuple[str, ...] = ("s5p", "oco_lite", "gosat_nies", "tansat_lite")
"""Product families: one reader, one writer and one file-name pattern each."""

FILL_VALUE_FLOAT = 9.96921e36
"""The netCDF default float fill value used by the S5P L2 processors."""

MOLECULES_PER_CM2_PER_MOL_M2 = 6.02214e19
"""``multiplication_factor_to_convert_to_molecules_percm2`` on column variables (mol m-2 → molecules cm-2)."""


@dataclass(frozen=True)
class ProductSpec:
    """One L2 product: where its value lives in the file and how to filter it.

    S5P: ``value_var``/``precision_var`` are variables of ``/PRODUCT`` with dims (time, scanline,
    ground_pixel). ``corrected_var``, when present in a file, is preferred over ``value_var`` (CO from
    processor 2.1, CH4 bias-corrected mixing ratio). Good pixels have ``qa_value > qa_threshold``.
    Other families: ``value_var``/``precision_var``/``qa_flag_var`` are paths in the file (dims (sounding,));
    good soundings have ``qa_flag_var == qa_flag_good`` (the reader turns that into ``qa`` 1/0).
    """

    name: str  # short name, lowercase: "no2"
    product_type: str  # ten characters as in file names: "L2__NO2___"
    value_var: str
    precision_var: str
    qa_threshold: float  # keep pixels with qa_value strictly greater than this (0–1)
    units: str  # units of value and precision, as in the file
    long_name: str
    standard_name: str
    corrected_var: str | None = None
    corrected_since_processor: str | None = None  # "020100": files from this processor on carry corrected_var
    multiplication_factor_to_convert_to_molecules_percm2: float | None = None
    averaging_kernel_var: str | None = None  # dims (time, scanline, ground_pixel, layer); never read
    averaging_kernel_group: str = "PRODUCT"
    ground_pixels: int = 450  # across-track pixels of a real granule
    layers: int = 34  # size of the ``layer`` dimension
    extra_dimensions: tuple[tuple[str, int], ...] = ()  # further /PRODUCT dims of real files
    title: str = ""  # global ``title`` attribute
    asset_title: str = ""  # STAC asset title, as Planetary Computer's item_assets
    spatial_resolution: str = ""  # global ``spatial_resolution`` attribute (before 2019-08-06)
    institution: str = "KNMI"
    references: str = ""
    product_version: str = "1.1.0"
    family: str = "s5p"  # one of FAMILIES
    mission: str = "s5p"  # file-name / key prefix of the mission: "s5p", "oco2", "oco3", "acos", ...
    platform: str = "Sentinel-5P"
    instrument: str = "TROPOMI"
    mission_start: dt.date = dt.date(2018, 4, 30)  # first day of data: the origin of the product's cubes
    qa_flag_var: str | None = None  # flag products: the flag variable (e.g. "xco2_quality_flag")
    qa_flag_good: int | None = None  # ... and its good value (0 for xco2_quality_flag)
    quality_document: str = ""  # where the quality rule comes from
    default_resolution: float = 0.1  # degrees: the default grid of this product's cubes
    footprint_km: float | None = None  # nominal footprint (side of an equal-area square) without vertices
    processing_level: str = ""  # "L2" when product_type does not start with it

    @property
    def level(self) -> str:
        """Processing level, e.g. ``"L2"``."""
        return self.processing_level or self.product_type[:2]

    @property
    def dataset(self) -> str:
        """The product's name in lake keys and collection ids: ``s5p-no2``, ``oco2-xco2``."""
        return f"s5p-{self.name}" if self.family == "s5p" else self.name

    @property
    def is_flag_product(self) -> bool:
        """True when quality is a flag (``qa_flag_var == qa_flag_good``), not a 0–1 ``qa_value``."""
        return self.qa_flag_good is not None


_PRODUCTS: dict[str, ProductSpec] = {
    "no2": ProductSpec(
        name="no2",
        product_type="L2__NO2___",
        value_var="nitrogendioxide_tropospheric_column",
        precision_var="nitrogendioxide_tropospheric_column_precision",
        qa_threshold=0.75,
        units="mol m-2",
        long_name="Tropospheric vertical column of nitrogen dioxide",
        standard_name="troposphere_mole_content_of_nitrogen_dioxide",
        multiplication_factor_to_convert_to_molecules_percm2=MOLECULES_PER_CM2_PER_MOL_M2,
        averaging_kernel_var="averaging_kernel",
        ground_pixels=450,
        layers=34,
        extra_dimensions=(
            ("polynomial_exponents", 6),
            ("intensity_offset_polynomial_exponents", 1),
            ("vertices", 2),
        ),
        title="TROPOMI/S5P NO2 1-Orbit L2 Swath 7x3.5km",
        asset_title="Nitrogen Dioxide Total Column",
        spatial_resolution="7x3.5km2",
        institution="KNMI",
        references="http://www.tropomi.eu/data-products/nitrogen-dioxide",
        product_version="1.1.0",
    ),
    "co": ProductSpec(
        name="co",
        product_type="L2__CO____",
        value_var="carbonmonoxide_total_column",
        precision_var="carbonmonoxide_total_column_precision",
        qa_threshold=0.5,
        units="mol m-2",
        long_name="Vertically integrated CO column",
        standard_name="atmosphere_mole_content_of_carbon_monoxide",
        corrected_var="carbonmonoxide_total_column_corrected",
        corrected_since_processor="020100",
        multiplication_factor_to_convert_to_molecules_percm2=MOLECULES_PER_CM2_PER_MOL_M2,
        averaging_kernel_var="column_averaging_kernel",
        ground_pixels=215,
        layers=50,
        title="TROPOMI/S5P CO Column 1-Orbit L2 Swath 7x7km",
        asset_title="Carbon Monoxide Total Column",
        spatial_resolution="7x7km2",
        institution="SRON",
        references="http://www.tropomi.eu/data-products/carbon-monoxide",
        product_version="1.1.0",
    ),
    "ch4": ProductSpec(
        name="ch4",
        product_type="L2__CH4___",
        value_var="methane_mixing_ratio",
        precision_var="methane_mixing_ratio_precision",
        qa_threshold=0.5,
        units="1e-9",  # ppb, spelled as in the files
        long_name="Column averaged dry air mixing ratio of methane",
        standard_name="dry_atmosphere_mole_fraction_of_methane",
        corrected_var="methane_mixing_ratio_bias_corrected",
        corrected_since_processor="000000",  # every CH4 file has it
        averaging_kernel_var="column_averaging_kernel",
        averaging_kernel_group="PRODUCT/SUPPORT_DATA/DETAILED_RESULTS",
        ground_pixels=215,
        layers=12,
        extra_dimensions=(("level", 13),),
        title="TROPOMI/S5P Methane 1-Orbit L2 Swath 7x7km",
        asset_title="Methane Total Column",
        spatial_resolution="7x7km2",
        institution="SRON",
        references="http://www.tropomi.eu/data-products/methane",
        product_version="1.2.0",
    ),
}

_XCO2_COMMON: dict[str, object] = dict(
    value_var="xco2",
    precision_var="xco2_uncertainty",
    qa_threshold=0.5,  # on the reader's qa (1 = flag good, 0 = bad): keeps exactly the flagged-good soundings
    units="ppm",
    long_name="Column-averaged dry-air mole fraction of carbon dioxide",
    standard_name="dry_atmosphere_mole_fraction_of_carbon_dioxide",
    qa_flag_var="xco2_quality_flag",
    qa_flag_good=0,
    ground_pixels=8,
    layers=20,
    processing_level="L2",
    institution="NASA JPL",
    product_version="",
)


def _xco2(name: str, **fields: object) -> ProductSpec:
    """An XCO2 product: :data:`_XCO2_COMMON` with ``fields`` over it."""
    return ProductSpec(name=name, **{**_XCO2_COMMON, **fields})  # type: ignore[arg-type]


_LITE_DUG = "OCO-2/OCO-3 L2 Lite FP Data User's Guide (v11): use soundings with xco2_quality_flag == 0"
_PRODUCTS.update(
    (spec.name, spec)
    for spec in (
        _xco2(
            "oco2-xco2",
            product_type="OCO2_L2_Lite_FP",
            title="OCO-2 Level 2 bias-corrected XCO2 and other select fields, Lite FP daily file",
            asset_title="OCO-2 Lite FP XCO2 daily file",
            references="https://disc.gsfc.nasa.gov/datasets/OCO2_L2_Lite_FP_11.2r/summary",
            spatial_resolution="1.29x2.25km2",
            family="oco_lite",
            mission="oco2",
            platform="OCO-2",
            instrument="OCO-2",
            mission_start=dt.date(2014, 9, 6),
            quality_document=_LITE_DUG,
            default_resolution=1.0,
        ),
        _xco2(
            "oco3-xco2",
            product_type="OCO3_L2_Lite_FP",
            title="OCO-3 Level 2 bias-corrected XCO2 and other select fields, Lite FP daily file",
            asset_title="OCO-3 Lite FP XCO2 daily file",
            references="https://disc.gsfc.nasa.gov/datasets/OCO3_L2_Lite_FP_10.4r/summary",
            spatial_resolution="1.6x2.2km2",
            family="oco_lite",
            mission="oco3",
            platform="ISS",
            instrument="OCO-3",
            mission_start=dt.date(2019, 8, 6),
            quality_document=_LITE_DUG,
            default_resolution=1.0,
        ),
        _xco2(
            "acos-xco2",
            product_type="ACOS_L2_Lite_FP",
            title="ACOS GOSAT/TANSO-FTS Level 2 bias-corrected XCO2, Lite FP daily file",
            asset_title="ACOS GOSAT Lite FP XCO2 daily file",
            references="https://disc.gsfc.nasa.gov/datasets/ACOS_L2_Lite_FP_9r/summary",
            spatial_resolution="10.5km diameter",
            family="oco_lite",
            mission="acos",
            platform="GOSAT",
            instrument="TANSO-FTS",
            mission_start=dt.date(2009, 4, 20),
            quality_document="ACOS L2 Lite Data User's Guide: use soundings with xco2_quality_flag == 0",
            default_resolution=2.0,
            footprint_km=9.3,  # a 10.5 km circle as an equal-area square
            ground_pixels=1,
        ),
        _xco2(
            "gosat-xco2",
            product_type="C01S",
            title="NIES GOSAT TANSO-FTS SWIR L2 column-averaged dry-air mole fraction (CO2)",
            asset_title="NIES GOSAT TANSO-FTS SWIR L2 CO2 (C01S) file",
            references="https://data2.gosat.nies.go.jp/",
            spatial_resolution="10.5km diameter",
            family="gosat_nies",
            mission="gosat",
            platform="GOSAT",
            instrument="TANSO-FTS",
            mission_start=dt.date(2009, 4, 1),
            quality_document="NIES FTS SWIR L2 product description: the C01S file holds only soundings that "
            "passed NIES screening; a finite XCO2 is good (assumed: no further flag is applied)",
            default_resolution=2.0,
            footprint_km=9.3,
            value_var="Data/mixingRatio/XCO2",
            precision_var="Data/mixingRatio/XCO2Error",
            qa_flag_var=None,
            qa_flag_good=None,
            ground_pixels=1,
            institution="NIES",
        ),
        _xco2(
            "tansat-xco2",
            product_type="TanSat_ACGS_L2_XCO2_lite",
            title="TanSat ACGS Level 2 XCO2 lite daily file",
            asset_title="TanSat ACGS XCO2 lite daily file",
            references="http://www.chinageoss.cn/tansat/",
            spatial_resolution="2x2km2",
            family="tansat_lite",
            mission="tansat",
            platform="TanSat",
            instrument="ACGS",
            mission_start=dt.date(2017, 3, 1),
            quality_document="TanSat XCO2 lite (IAP-CAS): xco2_quality_flag == 0 is good (assumed, OCO heritage)",
            default_resolution=1.0,
            footprint_km=2.0,
            ground_pixels=9,
            institution="IAP-CAS",
        ),
    )
)

PRODUCT_NAMES: tuple[str, ...] = tuple(_PRODUCTS)
S5P_PRODUCTS: tuple[str, ...] = tuple(n for n, s in _PRODUCTS.items() if s.family == "s5p")
XCO2_PRODUCTS: tuple[str, ...] = tuple(n for n, s in _PRODUCTS.items() if s.family != "s5p")


def get_product(name: str | ProductSpec) -> ProductSpec:
    """The spec of product ``name`` (short name like ``"no2"`` or type like ``"L2__NO2___"``, any case)."""
    if isinstance(name, ProductSpec):
        return name
    key = str(name).strip().lower()
    if key in _PRODUCTS:
        return _PRODUCTS[key]
    for spec in _PRODUCTS.values():
        if spec.product_type.lower() == key:
            return spec
    raise UnknownProductError(f"unknown product {name!r}: choose one of {', '.join(PRODUCT_NAMES)}")
