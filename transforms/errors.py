"""One base exception for eolake, with built-in mix-ins so callers can catch either.

Every message says what happened and what to do about it.
"""

from __future__ import annotations


class EolakeError(Exception):
    """Base class of every error eolake raises on purpose."""


class InputError(EolakeError, ValueError):
    """A user-supplied argument or file is invalid (bad CLI argument, bad table, bad bbox)."""


class UnknownProductError(InputError, KeyError):
    """A product name that eolake does not know."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class GranuleNameError(InputError):
    """A file name that does not follow the product's naming convention."""


class GranuleReadError(EolakeError, OSError):
    """A granule that cannot be opened or lacks the expected structure (truncated, corrupt, wrong product)."""


class TruthTableError(InputError):
    """A Carbon-Monitor-style CSV that is missing, malformed or names unknown countries/sectors."""


class LakeError(EolakeError, OSError):
    """The lake (a local directory or an s3:// URL) cannot be reached or written."""


class SourceError(EolakeError, OSError):
    """An upstream archive (STAC catalog/API, file server) cannot be read."""
