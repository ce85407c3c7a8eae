"""Writes: ``POST /collections`` (upload), ``PUT``/``PATCH``/``DELETE /collections/{id}``,
and ``/jobs/{id}``.

Who may do what is the policy's (``landexplorer.access``): uploading needs a contributor
or steward of the layer's group; a new version or new details need ``change`` (the owner,
the group's stewards); visibility, group, owner and deleting need ``manage``. Every
change is written to the audit log.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, File, Form, Request, UploadFile
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from landexplorer.access.licences import derived_change_refusal
from landexplorer.access.policy import can_create_in, can_move_into, decide
from landexplorer.api.auth import access_of, actor_of
from landexplorer.api.deps import (
    ChangeCollection,
    ManageCollection,
    SignedIn,
    SignedInWriter,
    StoreDep,
    settings_of,
    store_of,
)
from landexplorer.api.errors import ApiError
from landexplorer.api.jobs import Job, Jobs
from landexplorer.api.refusals import refusals
from landexplorer.api.responses import JSONResponse
from landexplorer.api.routers.landing import base_url
from landexplorer.api.routing import get_and_head
from landexplorer.catalog import LayerEntry, check_layer_id, slugify
from landexplorer.catalog.diskspace import disk_full, is_disk_full
from landexplorer.catalog.model import KINDS, VISIBILITIES, normalise_licence, type_change_message
from landexplorer.errors import InputError, LayerExists, TooLarge
from landexplorer.tiles import pyramid

router = APIRouter(tags=["Uploads and jobs"])
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
    if job.tiles:  # low-zoom tiles made ahead after the job (tiles/pyramid.py)
        doc["tiles"] = job.tiles
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
    actor = actor_of(request)
    access = access_of(request)

    def audit(entries: list[LayerEntry]) -> None:
        for entry in entries:
            access.audit(
                actor,
                kind,
                entry.id,
                entry.version,
                features=entry.feature_count,
                visibility=entry.visibility,
                group=entry.group,
            )

    job = jobs_of(request).submit_ingest(
        store_of(request), kind, layer_id, path, options, user=actor.user, on_done=audit
    )
    href = f"{base_url(request)}/jobs/{job.id}"
    return JSONResponse(_job_doc(request, job), status_code=202, headers={"Location": href})


@router.post("/collections", status_code=202, summary="Upload a new layer")
async def upload_layer(
    request: Request,
    store: StoreDep,
    actor: SignedInWriter,
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
    visibility: Annotated[
        str | None, Form(description="private (default), group, link or public")
    ] = None,
    group: Annotated[
        str | None,
        Form(
            max_length=40,
            description="The group the layer belongs to (default: yours, "
            "when you are a contributor of exactly one)",
        ),
    ] = None,
    crs: Annotated[str | None, Form(max_length=100)] = None,
    x: Annotated[str | None, Form(max_length=100)] = None,
    y: Annotated[str | None, Form(max_length=100)] = None,
    wkt: Annotated[str | None, Form(max_length=100)] = None,
) -> JSONResponse:
    """Load a file as a new layer in the background; follow the job at ``Location``.
    The layer belongs to the uploader and the group, and starts private unless a
    visibility is given."""
    from landexplorer.layers.ingest import IngestOptions

    group = _upload_group(actor, group or None)
    decision = can_create_in(actor, group)
    if not decision.allowed:
        raise ApiError(403, "forbidden", f"This layer cannot be added: {decision.reason}.")
    layer_id = check_layer_id(id or slugify(Path(file.filename or "upload").stem))
    if store.exists(layer_id):
        raise LayerExists(
            f"A layer called '{layer_id}' already exists: PUT /collections/{layer_id} "
            "replaces it with a new version, or choose another id."
        )
    options = IngestOptions(
        id=layer_id,
        title=title,
        description=description,
        kind=kind,
        licence=licence,
        attribution=attribution,
        visibility=visibility or "private",
        crs=crs,
        x=x,
        y=y,
        wkt=wkt,
        owner=actor.user,
        group=group,
    )
    options.check()
    return await _start(request, "upload", layer_id, file, options)


def _upload_group(actor: Any, group: str | None) -> str:
    """The group an upload goes into: the one asked for, else the uploader's only group
    they may add layers to (admins may leave it out)."""
    if group is not None:
        return group
    mine = sorted(g for g, role in actor.roles.items() if role in ("contributor", "steward"))
    if len(mine) == 1:
        return mine[0]
    if actor.admin:
        return ""
    if not mine:
        raise ApiError(
            403,
            "forbidden",
            "You are not a contributor of any group yet, so you cannot add layers. Ask a "
            "steward of your group to make you a contributor.",
        )
    raise InputError(f"Choose the group the layer belongs to: one of {', '.join(mine)}.")


@router.put(
    "/collections/{collectionId}",
    status_code=202,
    summary="Replace a layer with a new version",
)
async def replace_layer(
    request: Request,
    entry: ChangeCollection,
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

    if visibility and visibility != entry.visibility:
        _require_manage(request, entry, "change who sees")
    wanted = {"visibility": visibility or "", "licence": entry.licence}
    if licence:
        wanted["licence"] = normalise_licence(licence)
    refusal = derived_change_refusal(entry, source or entry.source, wanted)
    if refusal:  # a layer made from others keeps their terms (access/licences.py)
        raise ApiError(403, "licence-forbids", refusal)

    def given(value: str | None) -> str | None:
        return value if value else None  # an empty form field is not a new value

    options = IngestOptions(
        id=entry.id,
        title=given(title),
        description=given(description),
        kind=given(kind),
        licence=given(licence),
        attribution=given(attribution),
        visibility=given(visibility),
        source=given(source),
        crs=crs,
        x=x,
        y=y,
        wkt=wkt,
        replace=True,
        allow_type_change=allow_type_change,
    )
    options.check()
    return await _start(request, "replace", entry.id, file, options, current=entry)


def _require_manage(request: Request, entry: LayerEntry, what: str) -> None:
    decision = decide(actor_of(request), "manage", entry)
    if not decision.allowed:
        raise ApiError(
            403,
            "forbidden",
            f"You may change '{entry.id}' but not {what} it: {decision.reason}. Ask the "
            "owner or a steward of its group.",
        )


#: Details that say who the layer belongs to and who sees it: changing them is managing.
_MANAGED = ("visibility", "group", "owner")


@router.patch("/collections/{collectionId}", summary="Change a layer's details")
def update_layer(
    request: Request,
    store: StoreDep,
    entry: ChangeCollection,
    changes: Annotated[dict[str, str], Body(examples=[{"licence": "OGL-UK-3.0"}])],
) -> JSONResponse:
    """Change title, description, kind, licence or attribution (who may change the layer);
    visibility, group or owner (who may manage it)."""
    if "visibility" in changes and changes["visibility"] not in VISIBILITIES:
        raise InputError(f"visibility must be one of {', '.join(VISIBILITIES)}.")
    if "kind" in changes and changes["kind"] not in KINDS:
        raise InputError(f"kind must be one of {', '.join(KINDS)}.")
    if "licence" in changes:
        changes["licence"] = normalise_licence(changes["licence"])
    managed = [k for k in _MANAGED if k in changes and changes[k] != getattr(entry, k)]
    if managed:
        _require_manage(request, entry, "change the " + " and ".join(managed) + " of")
    refusal = derived_change_refusal(entry, entry.source, changes)
    if refusal:  # a layer made from others keeps their terms (access/licences.py)
        raise ApiError(403, "licence-forbids", refusal)
    if changes.get("visibility") == "public" and not changes.get("licence", entry.licence):
        raise InputError(
            f"'{entry.id}' has no licence yet, so it cannot be public: set a licence too "
            "(for example OGL-UK-3.0 or CC-BY-4.0)."
        )
    if changes.get("group"):
        actor = actor_of(request)
        group = changes["group"]
        if access_of(request).get_group(group) is None:
            raise InputError(f"There is no group called '{group}'.")
        if not can_move_into(actor, entry, group):
            raise ApiError(
                403, "forbidden", f"Only members of '{group}' may move their layers into it."
            )
    if changes.get("owner") and access_of(request).get_user(changes["owner"]) is None:
        raise InputError(f"There is no account called '{changes['owner']}'.")
    updated = store.update_metadata(entry.id, **changes)
    access_of(request).audit(
        actor_of(request),
        "update",
        updated.id,
        updated.version,
        changes=changes,
        before={k: getattr(entry, k) for k in changes},
    )
    return JSONResponse({"id": updated.id, "version": updated.version, **changes})


@router.delete(
    "/collections/{collectionId}",
    status_code=204,
    summary="Delete a layer",
    response_class=Response,
)
def delete_layer(request: Request, store: StoreDep, entry: ManageCollection) -> Response:
    """Remove a layer and its data (its share links and grants go with it)."""
    store.delete(entry.id)
    pyramid.remove(settings_of(request).pyramid_dir, entry.id)
    access = access_of(request)
    access.forget_layer(entry.id)
    access.audit(actor_of(request), "delete", entry.id, entry.version)
    return Response(status_code=204)


@get_and_head(router, "/jobs/{jobId}", summary="Status of a job", responses=refusals(401))
def job_status(
    request: Request,
    actor: SignedIn,
    job_id: Annotated[str, PathParam(alias="jobId", max_length=64)],
) -> JSONResponse:
    """Status, progress (features stored) and result of an upload job (its uploader's
    and the admins' to follow)."""
    job = jobs_of(request).get(job_id)
    if job is None or not (actor.admin or (job.user and job.user == actor.user)):
        raise ApiError(404, "not-found", "There is no job with that id.")
    return JSONResponse(_job_doc(request, job))
