"""Reading every input format, normalising it, and loading it into the catalogue."""

from landexplorer.layers.ingest import IngestOptions, ingest

__all__ = ["IngestOptions", "ingest"]
