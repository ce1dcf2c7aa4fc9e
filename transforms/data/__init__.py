"""Vendored data files (see PROVENANCE.md); read with importlib.resources, never from /work/shared."""
