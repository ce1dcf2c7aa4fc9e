"""The import rules of ARCHITECTURE.md: transforms/ and catalog/ pull in neither prefect nor s3fs/boto."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = ("prefect", "s3fs", "boto3", "botocore", "aiobotocore")


def _modules(package: str) -> list[str]:
    return [f"{package}.{m.name}" for m in pkgutil.iter_modules([str(REPO / package)])]


def test_transforms_and_catalog_stay_pure() -> None:
    mods = _modules("transforms") + _modules("catalog")
    assert "transforms.gridding" in mods and "catalog.store" in mods
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"forbidden imports: {proc.stdout.strip()}"


def test_no_environment_reads_in_transforms() -> None:
    offenders = [
        str(p.relative_to(REPO))
        for pkg in ("transforms", "catalog")
        for p in (REPO / pkg).rglob("*.py")
        if "os.environ" in p.read_text() or "getenv(" in p.read_text()
    ]
    assert offenders == []


def test_importing_the_cli_starts_nothing() -> None:
    code = "import sys, flows.cli; print(','.join(m for m in ('prefect', 'distributed', 's3fs') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
