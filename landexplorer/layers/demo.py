"""The demo: a manifest of real open datasets, fetched (or taken from a mirror), verified
by SHA-256 and ingested with their licences and attributions; the community layers
belong to a demo group and its steward (the manifest's ``people``)."""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from landexplorer.access.model import OPERATOR
from landexplorer.access.store import AccessStore
from landexplorer.catalog.base import Store
from landexplorer.catalog.model import LayerEntry
from landexplorer.errors import ChecksumMismatch, DataUnavailable, InputError
from landexplorer.layers.ingest import IngestOptions, ingest
from landexplorer.settings import Settings

DEFAULT_MANIFEST = Path(__file__).resolve().parents[2] / "data" / "demo.json"
_DOWNLOAD_TIMEOUT_S = 20


@dataclass
class DemoFile:
    path: str
    sha256: str
    url: str | None = None


@dataclass
class DemoLayer:
    id: str
    title: str
    kind: str
    licence: str
    attribution: str
    files: list[DemoFile]
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DemoPeople:
    """The demo's group and steward, and which kinds of layer they look after."""

    group: str
    group_title: str
    steward: str
    steward_display: str = ""
    kinds: tuple[str, ...] = ("community",)


def _read(path: Path | None) -> dict[str, Any]:
    manifest_path = path or DEFAULT_MANIFEST
    try:
        data: dict[str, Any] = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"The demo manifest '{manifest_path}' does not exist.") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"The demo manifest '{manifest_path}' is not valid JSON: {exc}.") from exc
    return data


def load_people(path: Path | None = None) -> DemoPeople | None:
    """The manifest's ``people`` section, or None when it has none."""
    people = _read(path).get("people")
    if not people:
        return None
    return DemoPeople(
        group=people["group"]["name"],
        group_title=people["group"].get("title", ""),
        steward=people["steward"]["name"],
        steward_display=people["steward"].get("display", ""),
        kinds=tuple(people.get("kinds", ["community"])),
    )


def ensure_people(store: Store, people: DemoPeople) -> None:
    """Make the demo group and its steward unless they exist (kept as they are if so)."""
    access = AccessStore.beside(store)
    try:
        if access.get_user(people.steward) is None:
            access.add_user(people.steward, display=people.steward_display)
            access.audit(OPERATOR, "user added", user=people.steward, demo=True)
        if access.get_group(people.group) is None:
            access.add_group(people.group, people.group_title)
            access.audit(OPERATOR, "group added", group=people.group, demo=True)
        if access.roles_of(people.steward).get(people.group) is None:
            access.set_member(people.group, people.steward, "steward")
            access.audit(
                OPERATOR, "member set", group=people.group, user=people.steward, role="steward"
            )
    finally:
        access.close()


def load_manifest(path: Path | None = None) -> list[DemoLayer]:
    data = _read(path)
    layers = []
    for item in data["layers"]:
        files = [DemoFile(**f) for f in item.pop("files")]
        layers.append(DemoLayer(files=files, **item))
    return layers


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(file: DemoFile, cache: Path, mirror: Path | None) -> Path:
    """A verified local copy of a demo file: from the cache, the mirror, or its URL."""
    return fetch_from(file, cache, mirror)[0]


def fetch_from(file: DemoFile, cache: Path, mirror: Path | None) -> tuple[Path, str]:
    """``fetch``, and where the copy came from in words ("the download cache", ...)."""
    cached = cache / file.path
    if cached.exists() and sha256_of(cached) == file.sha256:
        return cached, "the download cache"
    if mirror is not None:
        candidate = mirror / file.path
        if candidate.exists():
            if sha256_of(candidate) != file.sha256:
                raise ChecksumMismatch(
                    f"The mirror's copy of '{file.path}' is not the file the demo expects "
                    "(its SHA-256 differs); it may have been changed or damaged."
                )
            return candidate, f"the local mirror ({mirror})"
    if not file.url:
        raise DataUnavailable(
            f"'{file.path}' is not in the download cache and has no public address in the "
            "manifest; set LANDEXPLORER_DEMO_MIRROR to a folder that holds it."
        )
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(cached.suffix + ".part")
    try:
        with (
            urllib.request.urlopen(file.url, timeout=_DOWNLOAD_TIMEOUT_S) as response,
            partial.open("wb") as out,
        ):
            shutil.copyfileobj(response, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise DataUnavailable(
            f"'{file.path}' could not be downloaded (no network?). Set "
            "LANDEXPLORER_DEMO_MIRROR to a folder holding the demo files to work offline.",
            detail=f"{file.url}: {exc}",
        ) from exc
    if sha256_of(partial) != file.sha256:
        partial.unlink(missing_ok=True)
        raise ChecksumMismatch(
            f"The downloaded '{file.path}' is not the file the demo expects (SHA-256 differs)."
        )
    partial.replace(cached)
    return cached, f"the network ({urllib.parse.urlsplit(file.url).netloc})"


def load_demo(
    store: Store,
    settings: Settings,
    *,
    replace: bool = False,
    on_layer: Callable[[DemoLayer, LayerEntry | None, str], None] | None = None,
) -> list[LayerEntry]:
    """Ingest every demo layer not already in the catalogue (all of them with ``replace``).

    ``on_layer(layer, entry, origin)`` is told of each layer as it is done: ``entry`` is
    None for one already loaded, and ``origin`` says where its files came from.
    """
    layers = load_manifest(settings.demo_manifest)
    people = load_people(settings.demo_manifest)
    if people is not None:
        ensure_people(store, people)
    mirror = settings.resolved_demo_mirror()
    entries = []
    for layer in layers:
        cared = people is not None and layer.kind in people.kinds
        if store.exists(layer.id) and not replace:
            existing = store.get(layer.id)
            if cared and people is not None and not (existing.owner or existing.group):
                # a demo loaded before it had people: give the layer to the group now
                existing = store.update_metadata(layer.id, owner=people.steward, group=people.group)
            entries.append(existing)
            if on_layer:
                on_layer(layer, None, "already in the catalogue")
            continue
        fetched = [fetch_from(f, settings.cache_dir, mirror) for f in layer.files]
        paths = [path for path, _ in fetched]
        origin = ", ".join(dict.fromkeys(where for _, where in fetched))
        options = IngestOptions(
            id=layer.id,
            title=layer.title,
            description=layer.description,
            kind=layer.kind,
            licence=layer.licence,
            attribution=layer.attribution,
            source=", ".join(f.url or f.path for f in layer.files),
            owner=people.steward if cared and people is not None else None,
            group=people.group if cared and people is not None else None,
            replace=replace,
            batch_size=settings.batch_size,
            **layer.options,
        )
        new = ingest(store, paths if len(paths) > 1 else paths[0], options)
        entries.extend(new)
        if on_layer:
            on_layer(layer, new[0], origin)
    return entries
