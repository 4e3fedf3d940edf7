// ECharts, loaded once from the npm package the API serves (/ui/vendor/echarts.min.js). When it
// is missing the pages still work and say that charts are unavailable. Time axes use UTC with
// values moved to the site's wall clock (util.wallMs), so they read in the site's own time.

import { t } from "./i18n.js";
import { el, fill } from "./util.js";

let loading = null;

export function loadECharts() {
  if (!loading) {
    loading = new Promise((resolve) => {
      if (window.echarts) return resolve(window.echarts);
      const script = el("script", { src: "vendor/echarts.min.js" });
      script.onload = () => resolve(window.echarts ?? null);
      script.onerror = () => resolve(null);
      document.head.append(script);
    });
  }
  return loading;
}

const charts = new Set();
window.addEventListener("resize", () => {
  for (const chart of charts) chart.resize();
});

/** Draw `option` into `node` (replacing what it showed); null when ECharts is unavailable, in
 * which case `node` says so. */
export async function chart(node, option) {
  const echarts = await loadECharts();
  if (!node.isConnected) return null;
  if (!echarts) {
    fill(node, el("p.charts-unavailable", {}, t("charts.unavailable")));
    return null;
  }
  let instance = echarts.getInstanceByDom(node);
  if (!instance) {
    node.replaceChildren();
    instance = echarts.init(node, "dark", { renderer: "canvas" });
    instance.on("finished", () => {
      node.dataset.drawn = "1"; // rendered, animations over
    });
    charts.add(instance);
  }
  node.dataset.drawn = "0";
  instance.setOption(
    {
      backgroundColor: "transparent",
      textStyle: { fontFamily: getComputedStyle(document.body).fontFamily },
      ...option,
    },
    { notMerge: true },
  );
  return instance;
}

/** Dispose every chart that has left the page. */
export function disposeDetached() {
  for (const chart of charts) {
    if (!chart.getDom().isConnected) {
      chart.dispose();
      charts.delete(chart);
    }
  }
}

/** A sparkline as inline SVG (a table of hundreds of points needs no chart instances):
 * `values` oldest first, nulls are gaps. */
export function sparkline(values, { width = 120, height = 28, colour = "#7fb3ff" } = {}) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const present = (values ?? []).filter((v) => v !== null && v !== undefined);
  if (present.length === 0) return svg;
  const lo = Math.min(...present);
  const hi = Math.max(...present);
  const span = hi - lo || 1;
  const step = values.length > 1 ? width / (values.length - 1) : width;
  let d = "";
  let pen = false;
  values.forEach((v, i) => {
    if (v === null || v === undefined) {
      pen = false;
      return;
    }
    const x = (i * step).toFixed(1);
    const y = (height - 2 - ((v - lo) / span) * (height - 4)).toFixed(1);
    d += `${pen ? "L" : "M"}${x},${y}`;
    pen = true;
  });
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", d);
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", colour);
  path.setAttribute("stroke-width", "1.5");
  svg.append(path);
  return svg;
}
