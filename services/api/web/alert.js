// One alert: its facts and deadline, the steps left, the source's readings around the raise with
// the threshold lines and the raise marked, its history and, for a zone's alert, who is in it.

import { stepButtons } from "./actions.js";
import { api, pageData } from "./api.js";
import { countdown } from "./board.js";
import { chart } from "./charts.js";
import { t, tr } from "./i18n.js";
import { siteName } from "./session.js";
import { stream } from "./sse.js";
import { SEVERITY_COLOUR, debounce, el, fill, fmtMsLike, fmtNumber, fmtTime, wallMs } from "./util.js";

const THRESHOLD_COLOURS = [SEVERITY_COLOUR[2], SEVERITY_COLOUR[3], SEVERITY_COLOUR[4]];

/** Threshold lines: the lowest level in yellow up to the highest in red (and the reverse below). */
function thresholdLines(thresholds) {
  const lines = [];
  for (const [side, sign] of [
    ["above", "≥"],
    ["below", "≤"],
  ]) {
    const levels = [...(thresholds?.[side] ?? [])];
    levels.forEach((value, i) => {
      const colour =
        THRESHOLD_COLOURS[Math.min(THRESHOLD_COLOURS.length - 1, THRESHOLD_COLOURS.length - levels.length + i)];
      lines.push({
        yAxis: value,
        name: `${t("alert.threshold")} ${sign}${value}`,
        lineStyle: { color: colour, type: "dashed", width: 1.5 },
        label: { formatter: `${sign}${fmtNumber(value)}`, color: colour, position: "insideEndTop" },
      });
    });
  }
  return lines;
}

function readingsOption(alert, info) {
  const unit = info?.unit ?? "";
  const data = alert.readings.map((r) => [wallMs(r.ts), r.value]);
  const thresholds = thresholdLines(info?.thresholds);
  const values = [...data.map((d) => d[1]), ...thresholds.map((l) => l.yAxis)];
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const pad = (hi - lo || Math.abs(hi) || 1) * 0.1;
  return {
    useUTC: true,
    grid: { left: 60, right: 70, top: 30, bottom: 40 },
    tooltip: { trigger: "axis", valueFormatter: (v) => `${fmtNumber(v)} ${unit}` },
    xAxis: { type: "time", axisLabel: { hideOverlap: true } },
    yAxis: {
      type: "value",
      name: unit,
      min: Math.floor(lo - pad),
      max: Math.ceil(hi + pad),
      splitLine: { lineStyle: { opacity: 0.2 } },
    },
    series: [
      {
        name: alert.source.code,
        type: "line",
        showSymbol: data.length < 60,
        data,
        lineStyle: { width: 2, color: "#7fb3ff" },
        itemStyle: { color: "#7fb3ff" },
        markLine: {
          symbol: "none",
          silent: true,
          data: [
            ...thresholds,
            {
              xAxis: wallMs(alert.raised_at),
              name: t("alert.raise_mark"),
              lineStyle: { color: SEVERITY_COLOUR[alert.severity], width: 2 },
              label: { formatter: t("alert.raise_mark"), color: SEVERITY_COLOUR[alert.severity], position: "end" },
            },
          ],
        },
      },
    ],
  };
}

function facts(alert) {
  const forecast = alert.details?.forecast_failure_ms;
  const rows = [
    ["alert.raised_at", fmtTime(alert.raised_at)],
    ["alert.due_at", fmtTime(alert.due_at)],
    ["alert.acknowledged_at", fmtTime(alert.acknowledged_at) || "–"],
    ["alert.handled_at", fmtTime(alert.handled_at) || "–"],
    ["alert.closed_at", fmtTime(alert.closed_at) || "–"],
    ["alert.value", `${fmtNumber(alert.value)} ${alert.source_info?.unit ?? ""}`],
    ["alert.peak", `${fmtNumber(alert.peak)} ${alert.source_info?.unit ?? ""}`],
    ["alert.count", String(alert.count)],
  ];
  if (forecast) rows.push(["alert.forecast", fmtMsLike(forecast, alert.raised_at)]);
  return el(
    "dl.facts",
    {},
    rows.map(([key, value]) => [el("dt", {}, t(key)), el(`dd.${key.replace(".", "-")}`, {}, value)]),
  );
}

function history(alert) {
  return el(
    "ol.history",
    {},
    alert.history.map((h) =>
      el(
        `li.step.step-${h.action}`,
        { dataset: { action: h.action } },
        el("time", { datetime: h.at }, fmtTime(h.at)),
        el("strong", {}, tr("act", h.action)),
        el("span.by", {}, h.by),
        h.to && h.from !== h.to ? el("span.transition", {}, `${tr("state", h.from)} → ${tr("state", h.to)}`) : null,
        h.note ? el("p.note", {}, h.note) : null,
      ),
    ),
  );
}

/** Who is in a zone: its headcount against its limit and each occupant (tag, person, since). */
export function occupants(zone) {
  const people = zone.occupants ?? [];
  return el(
    "section.occupants",
    {},
    el(
      "h2",
      {},
      t("alert.occupants"),
      " ",
      el("small", {}, `${zone.headcount ?? people.length} / ${zone.limit ?? "–"}`),
    ),
    people.length === 0
      ? el("p.empty", {}, t("occ.none"))
      : el(
          "table.occupants",
          {},
          el(
            "thead",
            {},
            el(
              "tr",
              {},
              ["tag", "person", "since", "last_seen"].map((c) => el("th", {}, t(`occ.${c}`))),
            ),
          ),
          el(
            "tbody",
            {},
            people.map((p) =>
              el(
                "tr",
                {},
                el("td", {}, p.tag),
                el("td", {}, p.person ?? ""),
                el("td", {}, fmtTime(p.since)),
                el("td", {}, fmtTime(p.last_seen)),
              ),
            ),
          ),
        ),
  );
}

function header(alert, reload) {
  const due = el("span.due");
  const tick = () => {
    const { over, text } = countdown(alert);
    due.textContent = alert.state === "closed" ? (alert.overdue ? t("overdue") : "") : text;
    due.classList.toggle("over", over);
  };
  tick();
  const node = el(
    `header.alert-head.sev-${alert.severity}`,
    { dataset: { state: alert.state } },
    el("span.chip.big", { class: `sev-${alert.severity}` }, t(`sev.${alert.severity}`)),
    el(
      "div.title",
      {},
      el(
        "h1",
        {},
        `${siteName(alert.site)} · ${alert.source.code} · ${tr("rule", alert.rule)}`,
        alert.source_info?.name ? el("small", {}, ` ${alert.source_info.name}`) : null,
      ),
      el("p.message", {}, alert.message),
    ),
    el(
      "div.status",
      {},
      el(`span.state.state-${alert.state}`, {}, t(`state.${alert.state}`)),
      alert.overdue ? el("span.tag.overdue", {}, t("overdue")) : null,
      alert.cleared ? el("span.tag.cleared", {}, t("cleared")) : null,
      due,
    ),
    el("div.actions", {}, stepButtons(alert, { onDone: reload })),
  );
  return { node, tick };
}

const AROUND_MS = 10 * 60 * 1000; // the API returns the readings up to 10 minutes after the raise
const READINGS_REFRESH_MS = 15000;

function page(alert, info, reload) {
  const { node, tick } = header(alert, reload);
  const chartBox = el("div.chart.readings-chart");
  const showReadings = alert.source.type === "point";
  const isZone = alert.source.type === "zone" && info;
  const section = el(
    "section.alert-page",
    { dataset: { id: alert.id, state: alert.state } },
    el("a.back", { href: "#/board" }, `← ${t("back")}`),
    node,
    el(
      "div.alert-body",
      {},
      el(
        "div.main",
        {},
        showReadings ? [el("h2", {}, t("alert.readings")), chartBox] : null,
        isZone ? occupants(info) : null,
      ),
      el("aside", {}, facts(alert), el("h2", {}, t("alert.history")), history(alert)),
    ),
  );
  return { section, tick, chartBox: showReadings ? chartBox : null };
}

async function drawReadings(box, alert, info) {
  if (alert.readings.length === 0) {
    fill(box, el("p.empty", {}, t("alert.no_readings")));
    return null;
  }
  return chart(box, readingsOption(alert, info));
}

export function mountAlert(root, id, { notFound }) {
  let ticker = null;
  const state = { stopped: false, notFound };
  let shown = null; // the alert as drawn, without its readings: an unchanged one only redraws the chart
  let raisedAt = null;
  let box = null;
  const load = async () => {
    const alert = await pageData(state, () => api(`/alerts/${encodeURIComponent(id)}`));
    if (!alert || state.stopped) return;
    const info = alert.source_info ?? null;
    const key = JSON.stringify({ ...alert, readings: null });
    if (key !== shown) {
      shown = key;
      raisedAt = Date.parse(alert.raised_at);
      const drawn = page(alert, info, reload);
      clearInterval(ticker);
      ticker = setInterval(drawn.tick, 1000);
      fill(root, drawn.section);
      box = drawn.chartBox;
    }
    if (box) await drawReadings(box, alert, info);
  };
  const reload = debounce(() => load().catch(console.error), 300);
  const unsubscribe = stream.onAlert((a) => {
    if (a.id === id) reload();
  });
  // Readings keep arriving for 10 minutes after the raise (and ingest may store the raising one
  // just after the evaluator raised it): refresh the chart until then.
  const refresher = setInterval(() => {
    if (raisedAt && Date.now() < raisedAt + AROUND_MS + READINGS_REFRESH_MS) reload();
  }, READINGS_REFRESH_MS);
  load().catch((error) => fill(root, el("p.error", {}, t("error.generic", { msg: error.message }))));
  return () => {
    state.stopped = true;
    unsubscribe();
    clearInterval(ticker);
    clearInterval(refresher);
  };
}
