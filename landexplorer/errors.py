"""Domain errors.

Every error carries a ``public`` message written for a community volunteer (what went
wrong and what to do about it) and a stable ``code``. Details for the log (paths, GDAL
messages) go in ``detail`` and are never shown to web users. ``HTTP_STATUS`` is the one
map from error class to HTTP status; only ``landexplorer.api`` uses it.
"""

from __future__ import annotations


class LandExplorerError(Exception):
    """Base of every error landexplorer raises on purpose."""

    code = "error"

    def __init__(self, public: str, *, detail: str | None = None) -> None:
        super().__init__(public)
        self.public = public
        self.detail = detail


class InputError(LandExplorerError):
    """The file or request given to us cannot be used as it is."""

    code = "bad-input"


class UnsupportedFormat(InputError):
    code = "unsupported-format"


class EmptyInput(InputError):
    code = "empty-input"


class CRSError(InputError):
    """The coordinate reference system is missing, unknown or does not fit the data."""

    code = "crs"


class UnsafeArchive(InputError):
    code = "unsafe-archive"


class ChecksumMismatch(InputError):
    code = "checksum-mismatch"


class LayerNotFound(LandExplorerError):
    code = "not-found"


class LayerExists(LandExplorerError):
    code = "layer-exists"


class PermissionDenied(LandExplorerError):
    code = "permission-denied"


class TooLarge(InputError):
    code = "too-large"


class StoreBusy(LandExplorerError):
    """The catalogue is busy with another writer; trying again shortly will work."""

    code = "busy"


class WorkTooLarge(InputError):
    """A request would cost more work (pairs, cells, features) than this server allows."""

    code = "too-much-work"


class TimeBudgetExceeded(LandExplorerError):
    """The work ran past the time this server gives one request; it was stopped."""

    code = "timeout"


class Overloaded(LandExplorerError):
    """The server is too busy (or too full in memory) to start this work now."""

    code = "overloaded"


class DiskFull(LandExplorerError):
    """The disk holding the catalogue is full: the write was refused, nothing was lost."""

    code = "disk-full"


class DataUnavailable(LandExplorerError):
    """A file we need could not be fetched or found."""

    code = "data-unavailable"


HTTP_STATUS: dict[type[LandExplorerError], int] = {
    LandExplorerError: 500,
    InputError: 400,
    UnsupportedFormat: 415,
    EmptyInput: 400,
    CRSError: 400,
    UnsafeArchive: 400,
    ChecksumMismatch: 400,
    TooLarge: 413,
    LayerNotFound: 404,
    LayerExists: 409,
    PermissionDenied: 401,
    StoreBusy: 503,
    WorkTooLarge: 422,
    TimeBudgetExceeded: 504,
    Overloaded: 503,
    DiskFull: 507,
    DataUnavailable: 502,
}


def http_status(error: LandExplorerError) -> int:
    """The HTTP status for an error: the entry of its nearest class in ``HTTP_STATUS``."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]  # type: ignore[index]
    return 500
