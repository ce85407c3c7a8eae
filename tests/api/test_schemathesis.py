"""The OpenAPI document tells the truth: schemathesis, driven by the server's own document
with every default check (server errors, undocumented statuses and media types, response
schemas and headers, schema-valid requests refused, schema-violating requests accepted,
undeclared methods, Allow headers), finds nothing, on both stores, anonymous and signed in
with a site admin's personal access token; and every operationId is unique and stable."""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from landexplorer.api import create_app
from landexplorer.api.routing import allowed_methods
from landexplorer.settings import Settings
from tests.api.conftest import serve
from tests.people import make_token

SEED = "20261128"
#: Examples per operation and phase: enough to reach every status, bounded in time.
EXAMPLES = "10"

#: The operationIds clients (and generated client code) rely on: renaming one breaks them,
#: so a change here is a change of the API.
OPERATION_IDS = {
    "getLandingPage", "headLandingPage", "getConformance", "headConformance",
    "getWebConfig", "headWebConfig", "getWebAsset", "headWebAsset",
    "getCollections", "headCollections", "createCollection",
    "getCollection", "headCollection", "replaceCollection", "updateCollection",
    "deleteCollection", "getQueryables", "headQueryables", "getSchema", "headSchema",
    "getFeatures", "headFeatures", "getFeature", "headFeature", "getExport", "headExport",
    "getJob", "headJob", "compareLayers", "reportArea", "zonalStatistics",
    "getCollectionTile", "headCollectionTile", "getXyzTile", "headXyzTile",
    "getCollectionTileJSON", "headCollectionTileJSON", "getTileJSON", "headTileJSON",
    "getCollectionTilesets", "headCollectionTilesets",
    "getCollectionTileset", "headCollectionTileset",
    "saveMap", "getMap", "headMap", "openMap",
    "createFeature", "replaceFeature", "updateFeature", "deleteFeature", "revertFeature",
    "getFeatureHistory", "headFeatureHistory", "getChanges", "headChanges",
}  # fmt: skip

#: Operations whose inputs mean more than their JSON Schema can say, so a schema-valid
#: request can rightly be refused with 400 (or 415/422) and a plain-words reason: CQL2
#: text, bbox order, CRS names (items, features, exports), column names and colour ramps
#: (tiles), GeoJSON areas and column names (analysis; 422 when the work is too large),
#: drawn shapes (saved maps), files that must be geodata and SPDX licences (uploads),
#: the point asked of a raster (lon/lat, read by the route), a one-time sign-in link (one
#: the server did not make, or one used already, is refused with a page that says so).
SEMANTIC_INPUTS = [
    "getFeatures", "headFeatures", "getFeature", "headFeature", "getExport", "headExport",
    "getCollectionTile", "headCollectionTile", "getXyzTile", "headXyzTile",
    "compareLayers", "overlayLayers", "reportArea", "zonalStatistics", "saveMap",
    "createCollection", "replaceCollection", "updateCollection", "getRasterValue",
    "signInWithLink",
]  # fmt: skip
_ACCEPTED = ["2xx", "3xx", "400", "401", "403", "404", "409", "415", "422", "429", "5xx"]
#: Feature edits: a body is checked against the layer's columns and geometry type (400),
#: and changing a feature needs the ETag it was read with (428 without, 412 when stale).
FEATURE_EDITS = [
    "createFeature", "replaceFeature", "updateFeature", "deleteFeature", "revertFeature",
]  # fmt: skip


def _st() -> str:
    st = Path(sys.executable).with_name("st")
    return str(st) if st.exists() else (shutil.which("st") or "st")


def _config(folder: Path, collections: list[str], deletable: list[str] | None = None) -> Path:
    """schemathesis settings: real collection ids offered to the generator (as a dictionary,
    so the negative cases stay negative), and 400 accepted for the semantic inputs."""
    ids = ", ".join(f'"{c}"' for c in collections)
    text = f"""
[dictionaries.collections]
values = [{ids}]

[parameters]
"path.collectionId" = {{ dictionary = "collections", probability = 0.9 }}

[[operations]]
include-operation-id = [{", ".join(f'"{o}"' for o in SEMANTIC_INPUTS)}]
checks.positive_data_acceptance.expected-statuses = [{", ".join(f'"{s}"' for s in _ACCEPTED)}]

[[operations]]
include-operation-id = [{", ".join(f'"{o}"' for o in FEATURE_EDITS)}]
checks.positive_data_acceptance.expected-statuses = [{
        ", ".join(f'"{s}"' for s in [*_ACCEPTED, "412", "428"])
    }]
"""
    if deletable:  # deletes take spare layers, so the others stay for the rest of the run
        spare = ", ".join(f'"{c}"' for c in deletable)
        text += f"""
[dictionaries.deletable]
values = [{spare}]

[[operations]]
include-operation-id = "deleteCollection"
parameters = {{ "path.collectionId" = {{ dictionary = "deletable", probability = 0.9 }} }}
"""
    path = folder / "schemathesis.toml"
    path.write_text(text)
    return path


def _run_st(url: str, config: Path, *extra: str, timeout: int = 300) -> str:
    run = subprocess.run(
        [_st(), "--config-file", str(config), "run", f"{url}/openapi.json",
         "--max-examples", EXAMPLES, "--seed", SEED, "--phases", "examples,coverage,fuzzing",
         "--request-timeout", "30", "--no-color", *extra,
         # the live change feed is a stream that stays open (tests/edit/test_live_feed)
         "--exclude-operation-id", "getLiveChanges"],
        capture_output=True, text=True, timeout=timeout, cwd=config.parent,
    )  # fmt: skip
    summary = run.stdout.split("SUMMARY")[-1]
    assert run.returncode == 0, run.stdout[-6000:]
    assert "Server error" not in summary and "❌" not in summary, summary
    assert " passed" in summary or "No issues found" in summary, summary
    return summary


def _copy_data_dir(settings: Settings, target: Path) -> Settings:
    """The demo catalogue's folder copied (saved maps and tile caches written there stay
    out of the shared demo); a PostGIS demo keeps its database, used read-only."""
    shutil.copytree(settings.data_dir, target, ignore=shutil.ignore_patterns("maps", "jobs"))
    return settings.model_copy(update={"data_dir": target})


def test_operation_ids_unique_and_stable(tmp_path):
    doc = create_app(Settings(data_dir=tmp_path / "data")).openapi()
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    twice = [i for i, n in collections.Counter(ids).items() if n > 1]
    assert not twice, twice
    assert set(ids) >= OPERATION_IDS, OPERATION_IDS - set(ids)  # new ones may come, none go
    # the same document twice: nothing depends on the order things were built in
    again = create_app(Settings(data_dir=tmp_path / "data")).openapi()
    assert again == doc


def test_document_tells_the_truth(tmp_path):
    """Every method the server answers is documented (HEAD too, without bodies); every
    error is the one error body; no FastAPI 422 left."""
    app = create_app(Settings(data_dir=tmp_path / "data"))
    doc = app.openapi()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        answered = allowed_methods(app, re.sub(r"\{[^}]+\}", "1", path))
        assert {m.lower() for m in answered} == set(item), path
        if "head" in item:
            assert all("content" not in r for r in item["head"]["responses"].values()), path
        for method, op in item.items():
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")) and method != "head":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (path, status)
    tile = doc["paths"]["/collections/{collectionId}/tiles/WebMercatorQuad/{z}/{x}/{y}"]["get"]
    assert {"200", "204", "304", "404"} <= tile["responses"].keys()
    assert {"401", "413", "507"} <= doc["paths"]["/collections"]["post"]["responses"].keys()
    assert {"413", "429", "507"} <= doc["paths"]["/maps"]["post"]["responses"].keys()
    assert "requestBody" in doc["paths"]["/maps"]["post"]
    assert min(doc["paths"]["/m/{mapId}"]["get"]["responses"]) == "303"  # no 200


@pytest.mark.slow
def test_schemathesis_finds_nothing(demo_settings, tmp_path):
    """Every operation, anonymous, over the demo catalogue (both stores)."""
    settings = _copy_data_dir(demo_settings, tmp_path / "data")
    config = _config(tmp_path, ["allotments", "flood_risk", "street_trees", "elevation"])
    # a generous saved-map rate, so the fuzzing reaches past the 429
    with serve(settings, LANDEXPLORER_MAPS_PER_MINUTE="100000") as url:
        _run_st(url, config)


@pytest.mark.slow
def test_schemathesis_finds_nothing_in_writes(store_backend, settings, tmp_path, real_data):
    """Signed in as a site admin (a personal access token made by the access store), on a
    catalogue of its own: uploads, replace, patch, delete fuzzed."""
    from landexplorer.catalog import open_store
    from landexplorer.layers.ingest import IngestOptions, ingest

    store = open_store(settings)
    src = real_data / "allotments" / "trafford_allotments.geojson"
    for layer_id in ("allotments", "spare_a", "spare_b"):
        ingest(store, [src], IngestOptions(id=layer_id, licence="OGL-UK-3.0"))
    store.close()
    token = make_token(settings, "fuzz-admin")
    config = _config(tmp_path, ["allotments"], deletable=["spare_a", "spare_b"])
    with serve(settings) as url:
        _run_st(
            url, config, "--include-path-regex", "^/(collections|jobs)",
            "-H", f"Authorization: Bearer {token}",
        )  # fmt: skip
