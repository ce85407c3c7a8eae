"""Background jobs (uploads): run ingestion off the request, report status and progress.

Job records are small JSON files under ``data_dir/jobs`` written atomically, so any
worker process can answer ``/jobs/{id}`` whichever one runs the job.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from landexplorer.catalog import Store
from landexplorer.errors import LandExplorerError

log = logging.getLogger("landexplorer.api.jobs")
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass
class Job:
    """What a client sees at ``/jobs/{id}``."""

    id: str
    kind: str
    layer_id: str
    status: str = "accepted"  # accepted | running | successful | failed
    progress: int = 0  # features stored so far
    message: str = "Waiting to start."
    created: str = field(default_factory=_now)
    updated: str = field(default_factory=_now)
    layers: list[str] = field(default_factory=list)
    error: dict[str, str] | None = None


class Jobs:
    """The job folder and the single worker thread that runs uploads one at a time."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        # One at a time: the catalogue has a single writer anyway.
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="le-job")

    def _path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    def save(self, job: Job) -> None:
        job.updated = _now()
        tmp = self._path(job.id).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(job)))
        os.replace(tmp, self._path(job.id))

    def get(self, job_id: str) -> Job | None:
        if not _JOB_ID.match(job_id):
            return None
        try:
            return Job(**json.loads(self._path(job_id).read_text()))
        except FileNotFoundError:
            return None

    def submit_ingest(
        self, store: Store, kind: str, layer_id: str, path: Path, options: Any
    ) -> Job:
        """Queue an ingest of ``path`` (a file in its own temporary folder, removed after)."""
        job = Job(id=uuid.uuid4().hex, kind=kind, layer_id=layer_id)
        self.save(job)
        self.pool.submit(self._run_ingest, job, store, path, options)
        return job

    def _run_ingest(self, job: Job, store: Store, path: Path, options: Any) -> None:
        from landexplorer.layers.ingest import ingest

        job.status, job.message = "running", "Loading features."
        self.save(job)
        last = [0]

        def progress(stored: int) -> None:  # the running total for the current layer
            job.progress = stored
            if job.progress - last[0] >= 10_000:  # do not rewrite the record per batch
                last[0] = job.progress
                self.save(job)

        try:
            entries = ingest(store, [path], options, progress=progress)
            job.layers = [e.id for e in entries]
            job.progress = sum(e.feature_count for e in entries) or job.progress
            job.status = "successful"
            job.message = " ".join(entries[0].report.summary()) if entries else "Done."
        except LandExplorerError as exc:
            job.status, job.message = "failed", exc.public
            job.error = {"code": exc.code, "description": exc.public}
            log.info("upload job %s failed: %s (%s)", job.id, exc.public, exc.detail)
        except Exception:
            log.exception("upload job %s failed unexpectedly", job.id)
            job.status = "failed"
            job.message = "The file could not be loaded because of an unexpected problem."
            job.error = {"code": "server-error", "description": job.message}
        finally:
            shutil.rmtree(path.parent, ignore_errors=True)
            self.save(job)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=False)
