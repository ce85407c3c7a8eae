"""Background jobs (uploads): run ingestion off the request, report status and progress.

Job records are small JSON files under ``data_dir/jobs`` written atomically, so any
worker process can answer ``/jobs/{id}`` whichever one runs the job. Each upload is
received into its own folder under ``data_dir/uploads/<owner>/``, named after the
process that owns it.

A crash (kill -9, power cut, out of memory) must not leave a job ``running`` forever or
its upload on the disk. So every job records its owner (see ``catalog.owners``) and,
once it runs, what to check to know whether its layer version was stored: the layer id,
the version it would become and the SHA-256 of the file. ``Jobs.recover`` (at start-up,
and again whenever a job is asked for) gives each job of a process that is gone its final
state: ``successful`` when that version is in the catalogue after all, otherwise
``failed`` with a plain reason; and removes the upload folders and half-written records of
stopped processes. Several workers may start at once: recovery takes a lock file and
touches only the work of processes that are gone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from landexplorer.catalog import LayerEntry, Store
from landexplorer.catalog.diskspace import disk_full, is_disk_full
from landexplorer.catalog.owners import is_alive, is_owner_tag, this_process
from landexplorer.errors import DiskFull, LandExplorerError, LayerNotFound

log = logging.getLogger("landexplorer.api.jobs")
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")

FINAL = ("successful", "failed")
#: What a job left unfinished by a stopped server says.
INTERRUPTED = "The server stopped while this upload ran; nothing was stored, please upload again."
#: Upload folders from before uploads lived under the data folder (in the system's
#: temporary folder, with no owner): removed once they are this old.
_LEGACY_UPLOAD_AGE_S = 24 * 3600


TILES_NO_PROGRAM = (
    "This layer is big enough to need its low-zoom tiles made ahead, but tippecanoe is not "
    "installed on the server: they are drawn on request, more slowly."
)


def tiles_stopped(layer_ids: list[str]) -> str:
    """What a job says of low-zoom tiles its server stopped before they were made."""
    commands = " and ".join(f"'landexplorer tiles build {i}'" for i in layer_ids) or "it"
    return (
        "The server stopped before the low-zoom tiles were made; they are drawn on request "
        f"until {commands} makes them."
    )


def _tiles_pending(job: Job) -> bool:
    return any(state.get("status") == "making" for state in job.tiles.values())


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _folder_name(owner: str) -> str:
    """An owner tag as a folder name (':' is kept out of file names)."""
    return owner.replace(":", "+")


def _owner_of(folder_name: str) -> str:
    return folder_name.replace("+", ":")


@dataclass
class Job:
    """What a client sees at ``/jobs/{id}``, and what recovery needs after a crash."""

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
    user: str = ""  # the account that asked for it (who may follow it)
    #: per stored layer that needs low-zoom tiles made ahead (tiles/pyramid.py), after the
    #: job: {"status": making | ready | failed | stopped, "zooms": "0-N", "message": ...}
    tiles: dict[str, dict[str, str]] = field(default_factory=dict)
    # ---- for recovery (not shown to clients)
    owner: str = ""  # the process that runs it (catalog.owners tag)
    started: str = ""  # when the ingest began
    checksum: str = ""  # SHA-256 of the uploaded file, as the catalogue records it
    expect_version: int = 0  # the version of layer_id this job stores
    folder: str = ""  # the upload's temporary folder

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class Jobs:
    """The job folder and the single worker thread that runs uploads one at a time."""

    def __init__(
        self, folder: Path, store: Store | None = None, uploads: Path | None = None
    ) -> None:
        self.folder = Path(folder)
        #: Where uploads are received, one folder per owning process.
        self.uploads = Path(uploads) if uploads else self.folder.parent / "uploads"
        self.store = store
        self.owner = this_process()
        with contextlib.suppress(OSError):  # a full disk: records fail later, in words
            self.folder.mkdir(parents=True, exist_ok=True)
        # One at a time: the catalogue has a single writer anyway.
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="le-job")
        #: Final states that could not be written (full disk), answered from memory.
        self._unsaved: dict[str, Job] = {}
        self._lock = threading.Lock()
        #: Where the low-zoom pyramids of big layers are kept (tiles/pyramid.py); None:
        #: made by nobody here (``landexplorer tiles build`` makes them). They are made
        #: after an upload's job (``pyramids_after_upload``) and again after feature edits
        #: pause for ``refresh_after_s`` (0: never; ``refresh_pyramid``).
        self.pyramid_dir: Path | None = None
        self.pyramids_after_upload = True
        self.refresh_after_s = 300.0
        self._pyramids: list[threading.Thread] = []
        self._pyramid_turn = threading.Lock()  # one build at a time in this process
        self._stopping = threading.Event()
        self._refresh_due: dict[str, float] = {}  # layer id -> when to make it again
        self._refresher: threading.Thread | None = None

    @classmethod
    def start(cls, folder: Path, store: Store) -> Jobs:
        """The job runner of a starting server, after recovering what a crash left."""
        jobs = cls(folder, store)
        jobs.recover()
        return jobs

    # ----- records ------------------------------------------------------------------------
    def _path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    def save(self, job: Job) -> None:
        """Write a job's record atomically; a full disk is ``DiskFull``."""
        job.updated = _now()
        tmp = self.folder / f".{job.id}~{_folder_name(self.owner)}.tmp"
        try:
            tmp.write_text(json.dumps(asdict(job)))
            os.replace(tmp, self._path(job.id))
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if is_disk_full(exc):
                raise disk_full(self.folder, exc) from exc
            raise
        self._unsaved.pop(job.id, None)

    def _load(self, path: Path) -> Job | None:
        try:
            return Job.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def get(self, job_id: str) -> Job | None:
        if not _JOB_ID.match(job_id):
            return None
        if job_id in self._unsaved:
            return self._unsaved[job_id]
        job = self._load(self._path(job_id))
        if job is not None and job.status not in FINAL and self._orphaned(job):
            # its process is gone (a worker crashed while this one runs): finish it now
            self.recover()
            job = self._load(self._path(job_id)) or job
        if job is not None and _tiles_pending(job) and self._orphaned(job):
            for state in job.tiles.values():  # the server making them stopped
                if state.get("status") == "making":
                    state.update(status="stopped", message=tiles_stopped(job.layers))
        return job

    def _orphaned(self, job: Job) -> bool:
        if not job.owner:
            return True  # written before jobs had owners: nobody runs it now
        if job.owner == self.owner:
            return False
        return not is_alive(job.owner)

    # ----- uploads ------------------------------------------------------------------------
    def new_upload_folder(self) -> Path:
        """A fresh folder to receive one upload into, named after this process, so that a
        restart can tell the folder of a crashed upload from one being received."""
        base = self.uploads / _folder_name(self.owner)
        try:
            base.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix="up-", dir=base))
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full(base, exc) from exc
            raise

    def submit_ingest(
        self,
        store: Store,
        kind: str,
        layer_id: str,
        path: Path,
        options: Any,
        *,
        user: str = "",
        on_done: Callable[[list[LayerEntry]], None] | None = None,
    ) -> Job:
        """Queue an ingest of ``path`` (a file in its own temporary folder, removed after).
        ``on_done`` is called with the stored layers when it succeeds (the audit log)."""
        job = Job(id=uuid.uuid4().hex, kind=kind, layer_id=layer_id, owner=self.owner, user=user)
        job.folder = str(path.parent)
        try:
            self.save(job)
        except BaseException:
            shutil.rmtree(path.parent, ignore_errors=True)  # a full disk: nothing is kept
            raise
        self.pool.submit(self._run_ingest, job, store, path, options, on_done)
        return job

    def _run_ingest(
        self,
        job: Job,
        store: Store,
        path: Path,
        options: Any,
        on_done: Callable[[list[LayerEntry]], None] | None = None,
    ) -> None:
        from landexplorer.layers.ingest import file_checksum, ingest

        last = [0]

        def progress(stored: int) -> None:  # the running total for the current layer
            job.progress = stored
            if job.progress - last[0] >= 10_000:  # do not rewrite the record per batch
                last[0] = job.progress
                with contextlib.suppress(DiskFull):  # progress is not worth failing for
                    self.save(job)

        try:
            # what recovery checks if this process dies before the job's record says
            # how it ended: the version this upload would become, and its checksum
            job.started = _now()
            job.checksum = file_checksum([path])
            job.expect_version = _next_version(store, job.layer_id)
            job.status, job.message = "running", "Loading features."
            self.save(job)
            entries = ingest(store, [path], options, progress=progress)
            job.layers = [e.id for e in entries]
            job.progress = sum(e.feature_count for e in entries) or job.progress
            job.status = "successful"
            job.message = " ".join(entries[0].report.summary()) if entries else "Done."
            if on_done is not None:
                try:
                    on_done(entries)
                except Exception:  # the layer is stored; say so in the log
                    log.exception("upload job %s: recording it in the audit log failed", job.id)
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
            try:
                self.save(job)
            except (DiskFull, OSError) as exc:
                log.warning("could not record how upload job %s ended: %s", job.id, exc)
                self._unsaved[job.id] = job
        if job.status == "successful" and self.pyramid_dir and self.pyramids_after_upload:
            self._pyramid_after(store, job)

    def _tiles_state(self, job: Job, layer_id: str, status: str, zooms: str, message: str) -> None:
        """Say in the job's record how the low-zoom tiles of one of its layers stand."""
        job.tiles[layer_id] = {"status": status, "zooms": zooms, "message": message}
        try:
            self.save(job)
        except (DiskFull, OSError) as exc:  # the tiles are made all the same
            log.warning("could not record the tiles of upload job %s: %s", job.id, exc)
            self._unsaved[job.id] = job

    def _pyramid_after(self, store: Store, job: Job) -> None:
        """Make the low-zoom tiles of the stored layers that need them, in the background
        (the job has ended: the layer is served meanwhile, its low zooms drawn live), at a
        low CPU priority, one build at a time; stopped with the server. The job's record
        says how each stands (``Job.tiles``)."""
        from landexplorer.tiles import pyramid
        from landexplorer.tiles.service import layer_generation

        root = self.pyramid_dir
        assert root is not None

        def run() -> None:
            with self._pyramid_turn:
                for layer_id in job.layers:
                    if self._stopping.is_set():
                        break
                    zooms = ""
                    try:
                        entry = store.get(layer_id)
                        top = pyramid.planned_max_zoom(store, entry)
                        if top is None:
                            continue  # every tile can be drawn on request
                        zooms = f"0-{top}"
                        if pyramid.tippecanoe_program() is None:
                            self._tiles_state(job, layer_id, "failed", zooms, TILES_NO_PROGRAM)
                            continue
                        self._tiles_state(
                            job, layer_id, "making", zooms,
                            f"Making the tiles of zooms {zooms} ahead, for maps zoomed out "
                            "over the whole layer. Until they are ready those zooms are "
                            "drawn on request, more slowly.",
                        )  # fmt: skip
                        # behind another process making this layer's tiles (a refresh
                        # after edits, ``landexplorer tiles build``)
                        with pyramid.build_lock(root, layer_id, self._stopping):
                            _, seconds = pyramid.build(
                                store, entry, root, layer_generation(entry), top,
                                cancel=self._stopping,
                            )  # fmt: skip
                        log.info("made the tiles of zooms %s of '%s' in %.0f s",
                                 zooms, layer_id, seconds)  # fmt: skip
                        self._tiles_state(
                            job,
                            layer_id,
                            "ready",
                            zooms,
                            f"The tiles of zooms {zooms} were made in {seconds:.0f} s.",
                        )
                    except pyramid.Cancelled:
                        self._tiles_state(job, layer_id, "stopped", zooms,
                                          tiles_stopped([layer_id]))  # fmt: skip
                        break
                    except Exception:  # the layer is served all the same, drawn live
                        log.exception("making the low-zoom tiles of '%s' failed", layer_id)
                        self._tiles_state(
                            job,
                            layer_id,
                            "failed",
                            zooms,
                            "Making the low-zoom tiles failed (the server's log says why). "
                            "The layer is served all the same, drawn on request; "
                            f"'landexplorer tiles build {layer_id}' makes them again.",
                        )

        thread = threading.Thread(target=run, name="le-pyramid", daemon=True)
        self._pyramids = [t for t in self._pyramids if t.is_alive()] + [thread]
        thread.start()

    def wait_for_pyramids(self, timeout: float | None = None) -> None:
        """Wait for the background pyramid builds started so far, those after edits
        included (tests, shutdown)."""
        for thread in [*self._pyramids, self._refresher]:
            if thread is not None:
                thread.join(timeout)

    # ----- pyramids made again after feature edits ---------------------------------------------
    def refresh_pyramid(self, store: Store, layer_id: str) -> None:
        """A feature of ``layer_id`` was edited: if its current version has a pyramid, make
        it again once ``refresh_after_s`` have passed with no further edit (each edit puts
        it off). Until then the tiles an edit reached are drawn on request, with the edit.
        Several processes may be asked for the same layer: one makes it (a lock file in the
        layer's pyramid folder), the others find it holds their edits and do nothing."""
        if self.pyramid_dir is None or self.refresh_after_s <= 0 or self._stopping.is_set():
            return
        with self._lock:
            self._refresh_due[layer_id] = time.monotonic() + self.refresh_after_s
            if self._refresher is None or not self._refresher.is_alive():
                self._refresher = threading.Thread(
                    target=self._refresh_loop, args=(store,), name="le-pyramid-refresh",
                    daemon=True,
                )  # fmt: skip
                self._refresher.start()

    def _refresh_loop(self, store: Store) -> None:
        from landexplorer.tiles import pyramid

        while not self._stopping.is_set():
            with self._lock:
                if not self._refresh_due:
                    self._refresher = None
                    return
                layer_id, due = min(self._refresh_due.items(), key=lambda item: item[1])
                wait = due - time.monotonic()
                if wait <= 0:
                    del self._refresh_due[layer_id]
            if wait > 0:
                self._stopping.wait(min(wait, 1.0))  # an edit meanwhile puts it off again
                continue
            try:
                self._refresh(store, layer_id)
            except pyramid.Cancelled:
                return
            except LayerNotFound:
                continue  # deleted meanwhile
            except Exception:  # the edited tiles are drawn on request all the same
                log.exception("making the low-zoom tiles of '%s' again failed", layer_id)

    def _refresh(self, store: Store, layer_id: str) -> None:
        from landexplorer.tiles import pyramid
        from landexplorer.tiles.edits import EditIndex
        from landexplorer.tiles.service import layer_generation

        root = self.pyramid_dir
        assert root is not None
        entry = store.get(layer_id)
        generation = layer_generation(entry)
        if not pyramid.pyramid_path(root, layer_id, generation).is_file():
            return  # this version has none (replaced since, or never made)
        with self._pyramid_turn, pyramid.build_lock(root, layer_id, self._stopping):
            built = pyramid.Pyramids(root).find(entry, generation)
            if built is None or built.edits_included >= EditIndex(store).latest(entry):
                return  # made again meanwhile (by another process), with every edit
            top = pyramid.planned_max_zoom(store, entry)
            top = built.max_zoom if top is None else top  # the zooms it has, when unsure
            _, seconds = pyramid.build(store, entry, root, generation, top, cancel=self._stopping)
            log.info("made the tiles of zooms 0-%d of '%s' again after edits, in %.0f s",
                     top, layer_id, seconds)  # fmt: skip

    # ----- recovery -----------------------------------------------------------------------
    def recover(self) -> list[Job]:
        """Finish the jobs, and remove the upload folders and half-written records, that
        processes which are gone left behind. Returns the jobs given a final state.

        Never raises: a server must start whatever state the last one left (a full disk
        included); what cannot be done now is done at the next start or job lookup.
        """
        finished: list[Job] = []
        try:
            self._remove_orphan_files()  # first: it may free the room the rest needs
            with self._recovery_lock() as locked:
                if locked:
                    finished = self._finish_orphans()
        except Exception:
            log.exception("recovering upload jobs failed; trying again at the next start")
        return finished

    @contextlib.contextmanager
    def _recovery_lock(self, wait_s: float = 10.0) -> Iterator[bool]:
        """One recovering process at a time (workers start together); yields False when
        the lock cannot be had (another process is recovering, or a full disk)."""
        with self._lock:
            try:
                fd = os.open(self.folder / ".recovery.lock", os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                log.info("no job recovery now: %s", exc)
                yield False
                return
            try:
                deadline = time.monotonic() + wait_s
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            yield False
                            return
                        time.sleep(0.05)
                try:
                    yield True
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def _finish_orphans(self) -> list[Job]:
        finished = []
        for path in sorted(self.folder.glob("*.json")):
            job = self._load(path)
            if job is None or job.status in FINAL or not self._orphaned(job):
                continue
            try:
                self._settle(job)
            except LandExplorerError as exc:  # the store is busy: next time
                log.info("job %s left for later: %s", job.id, exc.public)
                continue
            try:
                self.save(job)
            except (DiskFull, OSError) as exc:
                log.info("job %s left for later: %s", job.id, exc)
                continue
            if job.folder:
                self._remove_folder(Path(job.folder))
            log.warning("upload job %s of a stopped server: %s", job.id, job.status)
            finished.append(job)
        return finished

    def _settle(self, job: Job) -> None:
        """The final state of a job whose process is gone: did its version commit?"""
        stored = self._stored_layers(job)
        if stored:
            job.status = "successful"
            job.layers = [e.id for e in stored]
            job.progress = sum(e.feature_count for e in stored)
            versions = ", ".join(f"{e.id} version {e.version}" for e in stored)
            job.message = (
                f"The upload was stored ({versions}) just before the server stopped. "
                "If the file held more layers than these, upload it again for the rest."
            )
            job.error = None
        else:
            job.status = "failed"
            job.message = INTERRUPTED
            job.error = {"code": "interrupted", "description": INTERRUPTED}

    def _stored_layers(self, job: Job) -> list[LayerEntry]:
        """The catalogue entries this job's upload became, if its commit happened."""
        if self.store is None or not job.checksum or not job.started:
            return []  # it never got as far as writing anything

        def made_by_job(entry: LayerEntry) -> bool:
            return entry.checksum == job.checksum and entry.updated >= job.started

        found = []
        for entry in self.store.list_layers():
            if entry.id == job.layer_id:
                if made_by_job(entry) and entry.version >= job.expect_version:
                    found.append(entry)
            elif (
                entry.id.startswith(job.layer_id + "_")  # a layer of a GeoPackage with several
                and entry.version == 1
                and made_by_job(entry)
            ):
                found.append(entry)
        return found

    def _remove_orphan_files(self) -> None:
        """Upload folders and half-written job records of processes that are gone."""
        if self.uploads.is_dir():
            for owned in self.uploads.iterdir():
                owner = _owner_of(owned.name)
                if owned.is_dir() and is_owner_tag(owner) and not is_alive(owner):
                    self._remove_folder(owned)
        if self.folder.is_dir():
            for tmp in self.folder.glob(".*.tmp"):
                owner = _owner_of(tmp.name[1:-4].partition("~")[2])
                if not is_owner_tag(owner) or not is_alive(owner):
                    with contextlib.suppress(OSError):
                        tmp.unlink()
        legacy = Path(tempfile.gettempdir())
        cutoff = time.time() - _LEGACY_UPLOAD_AGE_S
        with contextlib.suppress(OSError):
            for old in legacy.glob("le-upload-*"):
                with contextlib.suppress(OSError):
                    if old.is_dir() and old.stat().st_mtime < cutoff:
                        self._remove_folder(old)

    @staticmethod
    def _remove_folder(folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists():
            log.info("could not remove %s", folder)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=False)
        self._stopping.set()  # a pyramid being made is stopped, nothing of it kept
        self.wait_for_pyramids(timeout=30)
        with contextlib.suppress(OSError):  # this process's upload folder, when empty
            (self.uploads / _folder_name(self.owner)).rmdir()


def _next_version(store: Store, layer_id: str) -> int:
    try:
        return store.get(layer_id).version + 1
    except LayerNotFound:
        return 1
