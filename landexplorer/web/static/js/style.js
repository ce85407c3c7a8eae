// How layers are drawn: class colours for categorical columns (flood-risk band, land grade,
// site type...), one colour per layer otherwise, a ramp for rasters.

// Fixed colours where the classes have an order people expect (darker = more at risk/better).
const FIXED = {
  prob_4band: { High: "#08306b", Medium: "#2171b5", Low: "#6baed6", "Very Low": "#c6dbef" },
  grade: {
    "Grade 1": "#006837", "Grade 2": "#31a354", "Grade 3": "#a1d99b", "Grade 4": "#fed976",
    "Grade 5": "#fd8d3c", "Non Agricultural": "#bdbdbd", Urban: "#7f7f7f",
  },
};

// Columns that usually hold classes, in the order they are preferred.
const CLASS_COLUMNS = ["prob_4band", "grade", "site_type", "band", "class", "category", "type", "kind"];

const QUALITATIVE = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02",
  "#a6761d", "#1f78b4", "#b2df8a", "#fb9a99", "#cab2d6", "#8dd3c7"];

// One colour per layer id, stable between visits.
const LAYER_COLOURS = {
  flood_risk: "#2171b5", land_grade: "#31a354", allotments: "#d95f02", street_trees: "#238b45",
  greenspace: "#74c476", woodland: "#006d2c", watercourses: "#3182bd", conservation_areas: "#8c6bb1",
  sssi: "#dd3497", nature_reserves: "#41ab5d", wards: "#636363", borough: "#252525",
};

function hash(text) {
  let h = 0;
  for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) | 0;
  return Math.abs(h);
}

export function layerColour(id) {
  return LAYER_COLOURS[id] || QUALITATIVE[hash(id) % QUALITATIVE.length];
}

export function classColumnOf(columns) {
  return CLASS_COLUMNS.find((c) => columns.includes(c)) || null;
}

// Classes in the order a legend should list them: the fixed order where there is one.
export function sortClasses(column, values) {
  const fixed = FIXED[column] ? Object.keys(FIXED[column]) : [];
  const rank = (v) => (fixed.includes(v) ? fixed.indexOf(v) : fixed.length);
  return [...values].sort((a, b) => rank(a) - rank(b) || String(a).localeCompare(String(b)));
}

export function classColour(column, value) {
  const fixed = FIXED[column];
  if (fixed && fixed[value]) return fixed[value];
  return QUALITATIVE[hash(String(value)) % QUALITATIVE.length];
}

// The ramp the raster tiles are drawn with ("terrain"), as a CSS gradient for the legend.
export const TERRAIN_GRADIENT =
  "linear-gradient(to right, rgb(0,97,71), rgb(84,166,83), rgb(232,214,125), rgb(163,113,64), rgb(245,240,235))";

// A VectorGrid style function for one layer.
export function vectorStyle(state) {
  const base = layerColour(state.id);
  const g = (state.geometryType || "").toLowerCase();
  // VectorGrid passes no geometry type to style functions: the layer's own type decides.
  const dimension = g.includes("point") ? 1 : g.includes("line") ? 2 : 3;
  return (props) => {
    let colour = base;
    if (state.classColumn && props[state.classColumn] !== undefined) {
      const value = props[state.classColumn];
      colour = classColour(state.classColumn, value);
      if (!state.seen.has(value)) {
        state.seen.set(value, colour);
        state.onNewClass && state.onNewClass();
      }
    }
    // Opacity is set on the whole layer (GridLayer.setOpacity), not per feature.
    if (dimension === 1) {
      return { radius: 4, weight: 1, color: "#ffffff", opacity: 1, fill: true, fillColor: colour, fillOpacity: 0.9 };
    }
    if (dimension === 2) return { weight: 2, color: colour, opacity: 1 };
    return { weight: 1, color: colour, opacity: 0.9, fill: true, fillColor: colour, fillOpacity: 0.55 };
  };
}
