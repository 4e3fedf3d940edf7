// A site: headcount per zone against its limit, every point with its current value, alert state
// and last hour, and the slope points with displacement, rate, acceleration, tangent angle and
// the failure-time forecast. Refreshed from the small per-site endpoints when the stream brings
// a change of this site, and every 10 s.

import { occupants } from "./alert.js";
import { api, pageData } from "./api.js";
import { sparkline } from "./charts.js";
import { t, tr } from "./i18n.js";
import { refreshSites, session } from "./session.js";
import { stream } from "./sse.js";
import { SEVERITIES, SEVERITY_COLOUR, debounce, el, fill, fmtMsLike, fmtNumber, fmtTime } from "./util.js";

const REFRESH_MS = 10000;
const POINTS = 200;

function zoneCard(zone, { open, toggle }) {
  const limit = zone.limit || null; // a zone without a limit has no bar to fill
  const share = limit ? Math.min(100, (zone.headcount / limit) * 100) : 0;
  const warnAt = limit && zone.warn_at ? Math.min(100, (zone.warn_at / limit) * 100) : null;
  return el(
    `article.zone.zone-${zone.state}${open ? ".open" : ""}`,
    {
      dataset: { zone: zone.code, state: zone.state },
      title: t("site.zone_click"),
      tabindex: "0",
      onclick: () => toggle(zone.code),
      onkeydown: (e) => e.key === "Enter" && toggle(zone.code),
    },
    el("header", {}, el("strong", {}, zone.name || zone.code), el("small", {}, zone.code)),
    el(
      "div.count",
      {},
      el("span.headcount", {}, String(zone.headcount)),
      el("span.limit", {}, ` / ${zone.limit ?? "–"}`),
      el(`span.tag.zone-state`, {}, t(`zone.${zone.state}`)),
    ),
    el(
      "div.bar",
      { title: t("site.limit", { n: zone.limit }) },
      el("div.fill", { style: `width:${share}%` }),
      warnAt !== null ? el("div.mark", { style: `left:${warnAt}%` }) : null,
    ),
    el("footer", {}, tr("risk", zone.risk)),
  );
}

function stateCell(point) {
  if (!point.alert) return el("td.pt-state", {}, el("span.ok", {}, point.last ? t("pt.normal") : t("pt.nodata")));
  const a = point.alert;
  return el(
    "td.pt-state",
    {},
    el(`a.chip.sev-${a.severity}`, { href: `#/alerts/${a.id}` }, t(`sevshort.${a.severity}`)),
    " ",
    el(`span.state.state-${a.state}`, {}, t(`state.${a.state}`)),
    a.overdue ? el("span.tag.overdue", {}, t("overdue")) : null,
    a.cleared ? el("span.tag.cleared", {}, t("cleared")) : null,
  );
}

function thresholdText(thresholds) {
  if (!thresholds) return "";
  const above = (thresholds.above ?? []).map((v) => `≥${fmtNumber(v)}`);
  const below = (thresholds.below ?? []).map((v) => `≤${fmtNumber(v)}`);
  return [...above, ...below].join(" ");
}

function pointRow(point) {
  const colour = point.alert ? SEVERITY_COLOUR[point.alert.severity] : "#7fb3ff";
  return el(
    `tr.point${point.alert ? `.sev-${point.alert.severity}` : ""}`,
    { dataset: { point: point.code } },
    el("td.code", {}, point.code),
    el("td.name", {}, point.name ?? ""),
    el("td.kind", {}, tr("ptkind", point.kind)),
    el(
      "td.num.pt-value",
      { class: point.last?.quality && point.last.quality !== "good" ? `q-${point.last.quality}` : null },
      point.last ? `${fmtNumber(point.last.value)} ${point.unit ?? ""}` : "–",
    ),
    el("td.pt-ts", {}, point.last ? fmtTime(point.last.ts, { short: true }) : ""),
    stateCell(point),
    el("td.spark-cell", {}, sparkline(point.spark, { colour })),
    el("td.thresholds", {}, thresholdText(point.thresholds)),
  );
}

function slopeRow(point) {
  const trend = point.trend;
  return el(
    `tr.slope${trend.severity ? `.sev-${trend.severity}` : ""}`,
    { dataset: { point: point.code } },
    el("td.code", {}, point.code),
    el("td.name", {}, point.name ?? ""),
    el("td.num", {}, point.last ? `${fmtNumber(point.last.value)} ${point.unit ?? "mm"}` : "–"),
    el("td.num", {}, fmtNumber(trend.rate_mm_d)),
    el("td.num", {}, fmtNumber(trend.accel_mm_d2)),
    el(
      "td.num",
      {},
      trend.angle_deg === null || trend.angle_deg === undefined ? "–" : `${fmtNumber(trend.angle_deg, 1)}°`,
    ),
    el("td.forecast", {}, trend.forecast ? fmtMsLike(trend.forecast, point.last?.ts) : "–"),
    el(
      "td",
      {},
      trend.severity ? el(`span.chip.sev-${trend.severity}`, {}, t(`sev.${trend.severity}`)) : t("pt.normal"),
    ),
  );
}

/** A table whose columns are message keys; a key ending in "#" is a number column. */
function table(cls, columns, rows) {
  const head = columns.map((c) => (c.endsWith("#") ? el("th.num", {}, t(c.slice(0, -1))) : el("th", {}, t(c))));
  return el(`table.${cls}`, {}, el("thead", {}, el("tr", {}, head)), el("tbody", {}, rows));
}

function siteHead(code, zones) {
  const site = session.sites.get(code);
  const open = site?.open ?? {};
  return el(
    "header.site-head",
    {},
    el("h1", {}, site?.name ?? code, " ", el("small", {}, code)),
    el(
      "div.meta",
      {},
      site ? el("span", {}, tr("kind", site.kind)) : null,
      site ? el(`span.tag.site-state-${site.state}`, {}, tr("sitestate", site.state)) : null,
      zones.zones.length || zones.shift_capacity
        ? el("span.on-site", {}, t("site.on_site", { n: zones.on_site ?? 0, cap: zones.shift_capacity ?? "–" }))
        : null,
      SEVERITIES.map((s) => (open[s] ? el(`span.chip.sev-${s}`, {}, `${t(`sevshort.${s}`)} ${open[s]}`) : null)),
      site?.overdue ? el("span.tag.overdue", {}, t("board.overdue", { n: site.overdue })) : null,
    ),
  );
}

export function mountSite(root, code, { notFound }) {
  const state = { stopped: false, notFound, zone: null }; // zone: the one whose occupants are shown
  const base = `/sites/${encodeURIComponent(code)}`;
  const load = async () => {
    const found = await pageData(state, () =>
      Promise.all([
        api(`${base}/zones`),
        api(`${base}/points`, { params: { limit: POINTS } }),
        state.zone ? api(`${base}/zones/${encodeURIComponent(state.zone)}`).catch(() => null) : null,
      ]),
    );
    if (!found || state.stopped) return;
    const [zones, points, zone] = found;
    const toggle = (z) => {
      state.zone = state.zone === z ? null : z;
      refresh();
    };
    const slopes = points.points.filter((p) => p.trend);
    fill(
      root,
      el(
        "section.site-page",
        { dataset: { site: code } },
        siteHead(code, zones),
        zones.zones.length
          ? [
              el("h2", {}, t("site.zones")),
              el("div.zones", {}, zones.zones.map((z) => zoneCard(z, { open: z.code === state.zone, toggle }))),
              zone ? occupants(zone) : null,
            ]
          : null,
        slopes.length
          ? [
              el("h2", {}, t("site.slope")),
              table(
                "slopes",
                [
                  "pt.code",
                  "pt.name",
                  "slope.displacement#",
                  "slope.rate#",
                  "slope.accel#",
                  "slope.angle#",
                  "slope.forecast",
                  "pt.state",
                ],
                slopes.map(slopeRow),
              ),
            ]
          : null,
        el(
          "h2",
          {},
          t("site.points"),
          points.total > points.points.length
            ? el("small", {}, ` ${t("site.more", { n: points.total, m: points.points.length })}`)
            : null,
        ),
        points.points.length
          ? table(
              "points",
              ["pt.code", "pt.name", "pt.kind", "pt.value#", "pt.ts", "pt.state", "pt.trend", "alert.threshold"],
              points.points.map(pointRow),
            )
          : el("p.empty", {}, t("site.no_points")),
      ),
    );
  };
  const refresh = () =>
    load().catch((error) => {
      if (!state.stopped) fill(root, el("p.error", {}, t("error.generic", { msg: error.message })));
    });
  const soon = debounce(() => refreshSites().then(refresh, refresh), 500); // its header counts too
  const unsubscribe = stream.onAlert((alert) => {
    if (alert.site === code) soon();
  });
  const timer = setInterval(refresh, REFRESH_MS);
  fill(root, el("p.loading", {}, t("loading")));
  refresh();
  return () => {
    state.stopped = true;
    unsubscribe();
    clearInterval(timer);
  };
}

/** Every site the token may see, with its open alerts by severity and how many are overdue. */
export function mountSites(root) {
  const draw = () => {
    const sites = [...session.sites.values()].sort((a, b) => a.code.localeCompare(b.code));
    drawSites(root, sites);
  };
  draw();
  refreshSites().then(draw, console.error);
  return () => {};
}

function drawSites(root, sites) {
  fill(
    root,
    el(
      "section.sites-page",
      {},
      el("h1", {}, t("sites.title")),
      el(
        "div.site-cards",
        {},
        sites.map((s) =>
          el(
            "a.site-card",
            { href: `#/sites/${encodeURIComponent(s.code)}`, dataset: { site: s.code } },
            el("strong", {}, s.name),
            el("small", {}, `${s.code} · ${s.enterprise_name ?? s.enterprise} · ${tr("kind", s.kind)}`),
            el(
              "div.counts",
              {},
              SEVERITIES.map((sev) =>
                el(
                  `span.chip.sev-${sev}${s.open?.[sev] ? "" : ".zero"}`,
                  {},
                  `${t(`sevshort.${sev}`)} ${s.open?.[sev] ?? 0}`,
                ),
              ),
              s.overdue ? el("span.tag.overdue", {}, t("board.overdue", { n: s.overdue })) : null,
            ),
          ),
        ),
      ),
    ),
  );
}
