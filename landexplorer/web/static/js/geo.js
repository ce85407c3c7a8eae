// Geometry in the browser: measuring in a metric CRS (never in degrees), British National
// Grid references, and the small GeoJSON helpers the page needs. proj4 is loaded on first use
// so the first load of the page stays light.

const BNG =
  "+proj=tmerc +lat_0=49 +lon_0=-2 +k=0.9996012717 +x_0=400000 +y_0=-100000 +ellps=airy " +
  "+towgs84=446.448,-125.157,542.06,0.15,0.247,0.842,-20.489 +units=m +no_defs";
let proj4Promise = null;

export function loadProj4() {
  if (!proj4Promise) {
    proj4Promise = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = "/web/vendor/proj4/proj4.js";
      script.onload = () => { window.proj4.defs("EPSG:27700", BNG); resolve(window.proj4); };
      script.onerror = () => reject(new Error("proj4 did not load"));
      document.head.appendChild(script);
    });
  }
  return proj4Promise;
}

// The metric CRS for a place: British National Grid inside Great Britain, else its UTM zone.
export function metricCrsFor(lon, lat) {
  if (lon >= -8.9 && lon <= 2.1 && lat >= 49.7 && lat <= 61.0) {
    return { code: "EPSG:27700", name: "British National Grid (EPSG:27700)", def: "EPSG:27700" };
  }
  const zone = Math.min(60, Math.max(1, Math.floor((lon + 180) / 6) + 1));
  const south = lat < 0;
  const epsg = (south ? 32700 : 32600) + zone;
  return {
    code: `EPSG:${epsg}`,
    name: `UTM zone ${zone}${south ? "S" : "N"} (EPSG:${epsg})`,
    def: `+proj=utm +zone=${zone}${south ? " +south" : ""} +datum=WGS84 +units=m +no_defs`,
  };
}

function ringArea(ring) {
  let sum = 0;
  for (let i = 0, n = ring.length; i < n; i++) {
    const [x1, y1] = ring[i];
    const [x2, y2] = ring[(i + 1) % n];
    sum += x1 * y2 - x2 * y1;
  }
  return Math.abs(sum) / 2;
}

function pathLength(points) {
  let total = 0;
  for (let i = 1; i < points.length; i++) {
    total += Math.hypot(points[i][0] - points[i - 1][0], points[i][1] - points[i - 1][1]);
  }
  return total;
}

// Area (m²) of a GeoJSON Polygon/MultiPolygon, or length (m) of a (Multi)LineString,
// measured in the metric CRS of its first vertex. Returns {area_m2 | length_m, crs}.
export async function measure(geometry) {
  const proj4 = await loadProj4();
  const first = firstCoordinate(geometry);
  const crs = metricCrsFor(first[0], first[1]);
  const fwd = (c) => proj4("EPSG:4326", crs.def, c);
  const polys = geometry.type === "Polygon" ? [geometry.coordinates]
    : geometry.type === "MultiPolygon" ? geometry.coordinates : null;
  if (polys) {
    let area = 0;
    for (const poly of polys) {
      poly.forEach((ring, i) => { const a = ringArea(ring.map(fwd)); area += i === 0 ? a : -a; });
    }
    return { area_m2: area, crs: crs.name };
  }
  const lines = geometry.type === "LineString" ? [geometry.coordinates]
    : geometry.type === "MultiLineString" ? geometry.coordinates : [];
  return { length_m: lines.reduce((t, l) => t + pathLength(l.map(fwd)), 0), crs: crs.name };
}

function firstCoordinate(geometry) {
  let c = geometry.coordinates;
  while (Array.isArray(c[0])) c = c[0];
  return c;
}

export function formatArea(m2) {
  const ha = m2 / 10000;
  const acres = m2 / 4046.8564224;
  return `${Math.round(m2).toLocaleString()} m² · ${ha.toLocaleString(undefined, { maximumFractionDigits: 2 })} ha · ${acres.toLocaleString(undefined, { maximumFractionDigits: 2 })} acres`;
}

export function formatLength(m) {
  return `${Math.round(m).toLocaleString()} m · ${(m / 1000).toLocaleString(undefined, { maximumFractionDigits: 3 })} km`;
}

// ---- British National Grid references ("SJ 79 90", "SJ7950090100", "SJ8023085291") ----
const LETTERS = "ABCDEFGHJKLMNOPQRSTUVWXYZ"; // no I

export function parseGridRef(text) {
  const m = /^\s*([HNOST][A-HJ-Z])\s*(\d+)\s*(\d*)\s*$/i.exec(text);
  if (!m) return null;
  let digits = m[2] + m[3];
  if (m[3] && m[2].length !== m[3].length) return null;
  if (digits.length % 2 !== 0 || digits.length > 10) return null;
  const l1 = LETTERS.indexOf(m[1][0].toUpperCase());
  const l2 = LETTERS.indexOf(m[1][1].toUpperCase());
  // 500 km squares, then 100 km squares, counted from the false origin (square SV).
  let e100 = ((l1 - 2) % 5) * 5 + (l2 % 5);
  let n100 = 19 - Math.floor(l1 / 5) * 5 - Math.floor(l2 / 5);
  const half = digits.length / 2;
  const precision = 10 ** (5 - half);
  const e = e100 * 100000 + (half ? Number(digits.slice(0, half)) * precision : 0);
  const n = n100 * 100000 + (half ? Number(digits.slice(half)) * precision : 0);
  // The centre of the square the reference names.
  return { easting: e + precision / 2, northing: n + precision / 2, precision };
}

export async function bngToLonLat(easting, northing) {
  const proj4 = await loadProj4();
  return proj4("EPSG:27700", "EPSG:4326", [easting, northing]);
}

// Coordinates typed by a person: "53.42, -2.35" (lat, lon), or "379000 390000" (E, N).
export function parseCoordinates(text) {
  const m = /^\s*(-?\d+(?:\.\d+)?)\s*[,\s]\s*(-?\d+(?:\.\d+)?)\s*$/.exec(text);
  if (!m) return null;
  const a = Number(m[1]);
  const b = Number(m[2]);
  if (Math.abs(a) <= 90 && Math.abs(b) <= 180) return { lat: a, lon: b };
  if (a >= 0 && a <= 700000 && b >= 0 && b <= 1300000) return { easting: a, northing: b };
  return null;
}

export function bboxOfGeometry(geometry) {
  let minx = Infinity, miny = Infinity, maxx = -Infinity, maxy = -Infinity;
  const walk = (c) => {
    if (typeof c[0] === "number") {
      minx = Math.min(minx, c[0]); maxx = Math.max(maxx, c[0]);
      miny = Math.min(miny, c[1]); maxy = Math.max(maxy, c[1]);
    } else c.forEach(walk);
  };
  if (geometry.type === "GeometryCollection") geometry.geometries.forEach((g) => walk(g.coordinates));
  else walk(geometry.coordinates);
  return [minx, miny, maxx, maxy];
}
