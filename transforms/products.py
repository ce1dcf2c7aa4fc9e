"""The Sentinel-5P L2 products eolake knows, as frozen specs.

A :class:`ProductSpec` names the variables a reader takes from ``/PRODUCT`` and the recommended quality
threshold; everything product-specific elsewhere (file layout, STAC asset titles) is read from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from transforms.errors import UnknownProductError

FILL_VALUE_FLOAT = 9.96921e36
"""The netCDF default float fill value used by the S5P L2 processors."""

MOLECULES_PER_CM2_PER_MOL_M2 = 6.02214e19
"""``multiplication_factor_to_convert_to_molecules_percm2`` on column variables (mol m-2 → molecules cm-2)."""


@dataclass(frozen=True)
class ProductSpec:
    """One S5P L2 product: where its column lives in the file and how to filter it.

    ``value_var``/``precision_var`` are variables of ``/PRODUCT`` with dims (time, scanline, ground_pixel).
    ``corrected_var``, when present in a file, is preferred over ``value_var`` (CO from processor 2.1,
    CH4 bias-corrected mixing ratio). Good pixels have ``qa_value > qa_threshold``.
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

    @property
    def level(self) -> str:
        """Processing level, e.g. ``"L2"``."""
        return self.product_type[:2]


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

PRODUCT_NAMES: tuple[str, ...] = tuple(_PRODUCTS)


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
