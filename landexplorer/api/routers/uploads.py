"""Writes: ``POST /collections`` (upload), ``PUT``/``PATCH``/``DELETE /collections/{id}``,
and ``/jobs/{id}``. Every write needs the bearer token from the settings."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, File, Form, Request, UploadFile
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from landexplorer.api.deps import StoreDep, not_found, require_writer, settings_of, store_of
from landexplorer.api.errors import ApiError
from landexplorer.api.jobs import Job, Jobs
from landexplorer.api.responses import JSONResponse
from landexplorer.api.routers.landing import base_url
from landexplorer.api.routing import get_and_head
from landexplorer.catalog import LayerEntry, check_layer_id, slugify
from landexplorer.catalog.diskspace import disk_full, is_disk_full
from landexplorer.catalog.model import KINDS, VISIBILITIES, normalise_licence, type_change_message
from landexplorer.errors import InputError, LayerExists, LayerNotFound, TooLarge

router = APIRouter(tags=["Uploads and jobs"])
Writer = Depends(require_writer)
CollectionId = Annotated[str, PathParam(alias="collectionId", max_length=200)]
_CHUNK = 1 << 20


def jobs_of(request: Request) -> Jobs:
    """The app's job runner (built by ``create_app``)."""
    jobs: Jobs = request.app.state.jobs
    return jobs


def _job_doc(request: Request, job: Job) -> dict[str, Any]:
    root = base_url(request)
    doc: dict[str, Any] = {
        "jobID": job.id,
        "type": "process",
        "processID": job.kind,
        "status": job.status,
        "progress": job.progress,
        "message": job.message,
        "created": job.created,
        "updated": job.updated,
        "layers": job.layers,
        "links": [{"rel": "self", "type": "application/json", "href": f"{root}/jobs/{job.id}"}],
    }
    if job.error:
        doc["error"] = job.error
    for layer in job.layers:
        doc["links"].append(
            {"rel": "item", "type": "application/json", "href": f"{root}/collections/{layer}"}
        )
    return doc


async def _save_upload(request: Request, upload: UploadFile) -> Path:
    """Copy the upload into its own temporary folder, refusing it past the size limit."""
    limit = settings_of(request).max_upload_mb * 1024 * 1024
    name = Path(upload.filename or "upload").name or "upload"
    if name.startswith("."):
        name = "upload" + name
    folder = jobs_of(request).new_upload_folder()  # named after this process (recovery)
    target = folder / name
    size = 0
    try:
        with target.open("wb") as out:
            while chunk := await upload.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(
                        f"The file is larger than this server accepts "
                        f"({settings_of(request).max_upload_mb} MB)."
                    )
                out.write(chunk)
    except BaseException as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, OSError) and is_disk_full(exc):
            raise disk_full(folder, exc) from exc
        raise
    if size == 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise InputError("The uploaded file is empty.")
    return target


def _precheck(path: Path, options: Any, current: LayerEntry | None = None) -> None:
    """Refuse, before queuing, a file that is not geodata we can read (or, replacing
    ``current``, one that would change it between raster and vector unasked)."""
    from landexplorer.layers.readers import ReadOptions, is_raster_path, open_vector

    if current is not None and not options.allow_type_change:
        new_type = "raster" if is_raster_path(path) else "vector"
        if new_type != current.data_type:
            raise InputError(type_change_message(current.id, current.data_type, new_type))
    if is_raster_path(path):
        import rasterio

        try:
            with rasterio.open(path):
                return
        except Exception as exc:
            raise InputError(
                f"'{path.name}' could not be read as a raster.", detail=str(exc)
            ) from exc
    open_vector(
        path,
        ReadOptions(
            crs=options.crs, x=options.x, y=options.y, wkt=options.wkt, layer=options.layer
        ),
    )


async def _start(
    request: Request,
    kind: str,
    layer_id: str,
    upload: UploadFile,
    options: Any,
    current: LayerEntry | None = None,
) -> JSONResponse:
    path = await _save_upload(request, upload)
    try:
        await run_in_threadpool(_precheck, path, options, current)
    except BaseException:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise
    job = jobs_of(request).submit_ingest(store_of(request), kind, layer_id, path, options)
    href = f"{base_url(request)}/jobs/{job.id}"
    return JSONResponse(_job_doc(request, job), status_code=202, headers={"Location": href})


@router.post("/collections", status_code=202, summary="Upload a new layer", dependencies=[Writer])
async def upload_layer(
    request: Request,
    store: StoreDep,
    file: Annotated[UploadFile, File(description="CSV, GeoJSON, KML, zipped shapefile, ...")],
    id: Annotated[str | None, Form(max_length=48)] = None,
    title: Annotated[str | None, Form(max_length=200)] = None,
    description: Annotated[str | None, Form(max_length=2000)] = None,
    kind: Annotated[str | None, Form(description="community (default), open or reference")] = None,
    licence: Annotated[
        str | None,
        Form(
            max_length=200,
            description="SPDX licence id or expression (e.g. OGL-UK-3.0, CC-BY-4.0, "
            "'ODbL-1.0 AND CC-BY-4.0'); empty: none yet, the layer stays private",
        ),
    ] = None,
    attribution: Annotated[str | None, Form(max_length=500)] = None,
    visibility: Annotated[str | None, Form()] = None,
    crs: Annotated[str | None, Form(max_length=100)] = None,
    x: Annotated[str | None, Form(max_length=100)] = None,
    y: Annotated[str | None, Form(max_length=100)] = None,
    wkt: Annotated[str | None, Form(max_length=100)] = None,
) -> JSONResponse:
    """Load a file as a new layer in the background; follow the job at ``Location``."""
    from landexplorer.layers.ingest import IngestOptions

    layer_id = check_layer_id(id or slugify(Path(file.filename or "upload").stem))
    if store.exists(layer_id):
        raise LayerExists(
            f"A layer called '{layer_id}' already exists: PUT /collections/{layer_id} "
            "replaces it with a new version, or choose another id."
        )
    options = IngestOptions(
        id=layer_id, title=title, description=description, kind=kind, licence=licence,
        attribution=attribution, visibility=visibility, crs=crs, x=x, y=y, wkt=wkt,
    )  # fmt: skip
    options.check()
    return await _start(request, "upload", layer_id, file, options)


@router.put(
    "/collections/{collectionId}",
    status_code=202,
    summary="Replace a layer with a new version",
    dependencies=[Writer],
)
async def replace_layer(
    request: Request,
    store: StoreDep,
    collection_id: CollectionId,
    file: Annotated[UploadFile, File()],
    crs: Annotated[str | None, Form(max_length=100)] = None,
    x: Annotated[str | None, Form(max_length=100)] = None,
    y: Annotated[str | None, Form(max_length=100)] = None,
    wkt: Annotated[str | None, Form(max_length=100)] = None,
    title: Annotated[str | None, Form(max_length=200)] = None,
    description: Annotated[str | None, Form(max_length=2000)] = None,
    kind: Annotated[str | None, Form()] = None,
    licence: Annotated[str | None, Form(max_length=200)] = None,
    attribution: Annotated[str | None, Form(max_length=500)] = None,
    visibility: Annotated[str | None, Form()] = None,
    source: Annotated[str | None, Form(max_length=500)] = None,
    allow_type_change: Annotated[
        bool, Form(description="Let this replace turn a raster layer into a vector one, or back.")
    ] = False,
) -> JSONResponse:
    """Load a file as the next version of an existing layer. Title, description, kind,
    owner, visibility, licence, attribution and source are kept unless given here (an
    empty field is not given); the job's message says what was kept. A file that would
    turn a raster layer into a vector one, or back, is refused unless
    ``allow_type_change`` is true."""
    from landexplorer.layers.ingest import IngestOptions

    entry = _existing(store, collection_id)

    def given(value: str | None) -> str | None:
        return value if value else None  # an empty form field is not a new value

    options = IngestOptions(
        id=entry.id, title=given(title), description=given(description), kind=given(kind),
        licence=given(licence), attribution=given(attribution), visibility=given(visibility),
        source=given(source), crs=crs, x=x, y=y, wkt=wkt, replace=True,
        allow_type_change=allow_type_change,
    )  # fmt: skip
    options.check()
    return await _start(request, "replace", entry.id, file, options, current=entry)


def _existing(store: Any, layer_id: str) -> Any:
    try:
        check_layer_id(layer_id)
        return store.get(layer_id)
    except (InputError, LayerNotFound):
        raise not_found(layer_id) from None


@router.patch(
    "/collections/{collectionId}", summary="Change a layer's details", dependencies=[Writer]
)
def update_layer(
    store: StoreDep,
    collection_id: CollectionId,
    changes: Annotated[dict[str, str], Body(examples=[{"licence": "OGL-UK-3.0"}])],
) -> JSONResponse:
    """Change title, description, kind, owner, visibility, licence or attribution."""
    entry = _existing(store, collection_id)
    if "visibility" in changes and changes["visibility"] not in VISIBILITIES:
        raise InputError(f"visibility must be one of {', '.join(VISIBILITIES)}.")
    if "kind" in changes and changes["kind"] not in KINDS:
        raise InputError(f"kind must be one of {', '.join(KINDS)}.")
    if "licence" in changes:
        changes["licence"] = normalise_licence(changes["licence"])
    updated = store.update_metadata(entry.id, **changes)
    return JSONResponse({"id": updated.id, "version": updated.version, **changes})


@router.delete(
    "/collections/{collectionId}",
    status_code=204,
    summary="Delete a layer",
    dependencies=[Writer],
    response_class=Response,
)
def delete_layer(store: StoreDep, collection_id: CollectionId) -> Response:
    """Remove a layer and its data."""
    entry = _existing(store, collection_id)
    store.delete(entry.id)
    return Response(status_code=204)


@get_and_head(router, "/jobs/{jobId}", summary="Status of a job")
def job_status(
    request: Request, job_id: Annotated[str, PathParam(alias="jobId", max_length=64)]
) -> JSONResponse:
    """Status, progress (features stored) and result of an upload job."""
    job = jobs_of(request).get(job_id)
    if job is None:
        raise ApiError(404, "not-found", "There is no job with that id.")
    return JSONResponse(_job_doc(request, job))
