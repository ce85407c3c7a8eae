"""The demo: a manifest of real open datasets, fetched (or taken from a mirror), verified
by SHA-256 and ingested with their licences and attributions."""

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


def load_manifest(path: Path | None = None) -> list[DemoLayer]:
    manifest_path = path or DEFAULT_MANIFEST
    try:
        data = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"The demo manifest '{manifest_path}' does not exist.") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"The demo manifest '{manifest_path}' is not valid JSON: {exc}.") from exc
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
    mirror = settings.resolved_demo_mirror()
    entries = []
    for layer in layers:
        if store.exists(layer.id) and not replace:
            existing = store.get(layer.id)
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
            replace=replace,
            batch_size=settings.batch_size,
            **layer.options,
        )
        new = ingest(store, paths if len(paths) > 1 else paths[0], options)
        entries.extend(new)
        if on_layer:
            on_layer(layer, new[0], origin)
    return entries
