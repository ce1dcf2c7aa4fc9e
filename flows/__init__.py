"""Prefect flows (thin wiring over transforms/, catalog/ and infra/) and the ``eolake`` CLI."""
