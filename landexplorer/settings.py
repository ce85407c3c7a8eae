"""The one settings object.

Built once at the edge (the CLI or ``create_app``) and passed down; nothing else in
the package reads the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The real-data bundle that sits beside a checkout of the project; used as the
#: demo mirror when it exists and nothing else is configured.
_SHARED_MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


class Settings(BaseSettings):
    """Everything landexplorer can be configured with (environment prefix ``LANDEXPLORER_``)."""

    model_config = SettingsConfigDict(env_prefix="LANDEXPLORER_", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="Folder holding the catalogue.")
    catalog_file: str = Field(
        default="landexplorer.gpkg", description="GeoPackage file name inside data_dir."
    )
    database_url: str | None = Field(
        default=None, description="postgresql://... to keep the catalogue in PostGIS instead."
    )
    demo_manifest: Path | None = Field(
        default=None, description="Demo manifest (defaults to the one shipped in data/)."
    )
    demo_mirror: Path | None = Field(
        default=None, description="Local folder holding the demo files when there is no network."
    )
    demo_cache: Path | None = Field(
        default=None, description="Where downloaded demo files are kept (default data_dir/cache)."
    )
    tile_cache_dir: Path | None = Field(
        default=None,
        description="Where drawn tiles are kept as files (default data_dir/tilecache). "
        "Instances sharing a data folder may share it or keep one each (docs/deploy.md).",
    )
    pyramids_after_upload: bool = Field(
        default=True,
        description="After an upload through the API, make the low-zoom tiles of a layer "
        "too big to draw zoomed out on request (tippecanoe, in the background).",
    )
    pyramid_refresh_after_s: float = Field(
        default=300.0,
        ge=0,
        description="After feature edits to a layer whose low-zoom tiles were made ahead, "
        "make them again once no edit has come for this many seconds (0: never by itself; "
        "'landexplorer tiles build' does it). Until then the tiles edits reached are drawn "
        "on request.",
    )
    batch_size: int = Field(default=65_536, ge=1_000, le=1_000_000)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65_535)
    max_upload_mb: int = Field(default=200, ge=1)
    cors_origins: list[str] = Field(default_factory=list)
    basemap: str = Field(
        default="https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        description="Tile URL template for the web map's basemap, or 'none'.",
    )

    # ---- Limits for a public server: every input is sized before work is done on it.
    # The defaults are meant for a server open to anyone on a 2-core, few-GB machine;
    # a trusted, private server can raise them. See docs/limits.md.
    max_json_kb: int = Field(
        default=1024, ge=1, description="Largest JSON request body (analysis, saved maps), KB."
    )
    max_header_kb: int = Field(
        default=16, ge=1, le=1024, description="Largest request line plus headers, KB."
    )
    max_filter_chars: int = Field(default=20_000, ge=100, description="Longest CQL2 filter.")
    max_filter_depth: int = Field(
        default=20, ge=2, le=200, description="Deepest nesting of brackets/NOTs in a filter."
    )
    max_filter_nodes: int = Field(
        default=1_000, ge=10, description="Most conditions, values and operators in a filter."
    )
    max_geojson_vertices: int = Field(
        default=100_000, ge=100, description="Most vertices in a GeoJSON geometry in a request."
    )
    max_geojson_parts: int = Field(
        default=1_000, ge=1, description="Most polygons/lines/rings in a request geometry."
    )
    max_compare_pairs: int = Field(
        default=2_000_000, ge=1_000, description="Most feature pairs a comparison may produce."
    )
    max_zonal_cells: int = Field(
        default=50_000_000, ge=1_000, description="Most raster cells a zonal query may read."
    )
    max_report_features: int = Field(
        default=500_000, ge=1_000, description="Most features an area report may measure."
    )
    work_threads: int = Field(
        default=8, ge=1, le=256, description="Threads for queries, analysis and rendering."
    )
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="Time budget of one request's work, seconds."
    )
    memory_limit_mb: int = Field(
        default=768,
        ge=64,
        description="Memory (RSS) above which a worker refuses new heavy work with 503.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses whose X-Forwarded-For/-Proto headers are believed.",
    )
    public_url: str | None = Field(
        default=None,
        description="The server's address as the public sees it (https://maps.example.org); "
        "links use it instead of the request's Host header.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names (besides localhost) that links may be built on when "
        "public_url is not set; other Host headers are not copied into links.",
    )
    maps_max_kb: int = Field(default=256, ge=1, description="Largest saved map, KB.")
    maps_per_minute: int = Field(
        default=10, ge=1, description="Saved maps one client may create per minute."
    )
    maps_max_total_mb: int = Field(
        default=200, ge=1, description="Disk space all saved maps together may take, MB."
    )
    basemaps: list[str] = Field(
        default_factory=lambda: ["osm", "topo", "none"],
        description="Basemaps the page offers (it opens on `basemap`): 'osm', 'topo', 'none', "
        "or 'Name|{z}/{x}/{y} tile URL|attribution'.",
    )

    live_max_streams: int = Field(
        default=200, ge=1, le=100_000,
        description="Live change feeds (/changes/live) one worker process keeps open at once.",
    )  # fmt: skip
    live_max_per_client: int = Field(
        default=10, ge=1, le=10_000,
        description="Live change feeds one client address may hold open on one worker.",
    )  # fmt: skip
    live_max_s: int = Field(
        default=3600,
        ge=1,
        le=86_400,
        description="Longest one live change feed stays open, seconds (the browser then "
        "reconnects and resumes where it was).",
    )

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("tile_cache_dir", mode="after")
    @classmethod
    def _expand_cache(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()

    @property
    def catalog_path(self) -> Path:
        """The GeoPackage that holds the catalogue and every vector layer."""
        return self.data_dir / self.catalog_file

    @property
    def raster_dir(self) -> Path:
        """Where raster layers are stored as Cloud-Optimised GeoTIFFs."""
        return self.data_dir / "rasters"

    @property
    def pyramid_dir(self) -> Path:
        """Where the low-zoom tile pyramids of big layers are kept (tiles/pyramid.py)."""
        return self.data_dir / "pyramids"

    @property
    def tile_cache_path(self) -> Path:
        """The tile cache's folder: ``tile_cache_dir``, else ``data_dir/tilecache``."""
        return self.tile_cache_dir or (self.data_dir / "tilecache")

    @property
    def cache_dir(self) -> Path:
        return self.demo_cache or (self.data_dir / "cache")

    def resolved_demo_mirror(self) -> Path | None:
        """The demo mirror: the configured one, else the shared bundle beside the checkout."""
        if self.demo_mirror is not None:
            return self.demo_mirror.expanduser()
        return _SHARED_MIRROR if _SHARED_MIRROR.is_dir() else None
