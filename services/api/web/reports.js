// Reports: the daily same-day figures per site (closed on time, closed late, still open, overdue)
// and the monthly dispatch table (alerts per day by severity, the six hazard columns), each with
// its CSV and Excel downloads.

import { api, describe, download } from "./api.js";
import { chart } from "./charts.js";
import { t } from "./i18n.js";
import { enterpriseName, siteName } from "./session.js";
import { SEVERITIES, SEVERITY_COLOUR, el, fill, fmtDuration, todayCst } from "./util.js";

const DAILY_PARTS = [
  ["closed_on_time", "#3fb950"],
  ["closed_late", "#a371f7"],
  ["open_in_time", "#8b949e"],
  ["open_overdue", SEVERITY_COLOUR[4]],
];
const DAILY_COLUMNS = ["raised", "closed_on_time", "closed_late", "open", "overdue", "ack_mean_s", "close_mean_s"];

/** The daily figures split so that the stack adds up to `raised`: overdue alerts are either
 * closed late or still open past their deadline. */
function dailyParts(row) {
  const openOverdue = Math.max(0, row.overdue - row.closed_late);
  return {
    closed_on_time: row.closed_on_time,
    closed_late: row.closed_late,
    open_in_time: Math.max(0, row.open - openOverdue),
    open_overdue: openOverdue,
  };
}

function stackedBars(categories, series, { rotate = 0 } = {}) {
  return {
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
    legend: { top: 0 },
    grid: { left: 50, right: 20, top: 40, bottom: rotate ? 70 : 40 },
    xAxis: { type: "category", data: categories, axisLabel: { rotate, interval: 0, hideOverlap: true } },
    yAxis: { type: "value", minInterval: 1, splitLine: { lineStyle: { opacity: 0.2 } } },
    series: series.map((s) => ({ type: "bar", stack: "all", barMaxWidth: 48, emphasis: { focus: "series" }, ...s })),
  };
}

function cell(key, value) {
  if (key.endsWith("_s"))
    return el("td.num", {}, value === null || value === undefined ? "–" : fmtDuration(value * 1000));
  return el(`td.num.${key}`, {}, String(value ?? 0));
}

/** CSV and Excel buttons; `param()` gives the report's query when clicked. */
function downloads(path, param) {
  const status = el("span.download-error", { role: "alert" });
  const button = (format) =>
    el(
      `button.download.download-${format}`,
      {
        type: "button",
        onclick: () => {
          status.textContent = "";
          const [key, value] = param();
          download(path, { [key]: value, format }, `${path.split("/").pop()}-${value}.${format}`).catch((e) => {
            status.textContent = describe(e);
          });
        },
      },
      t(`rep.${format}`),
    );
  return el("span.downloads", {}, button("csv"), button("xlsx"), status);
}

async function drawDaily(box, date) {
  const report = await api("/reports/daily", { params: { date } });
  const chartBox = el("div.chart.daily-chart");
  const rows = report.sites;
  fill(
    box,
    el("h3", {}, t("rep.per_site")),
    chartBox,
    el(
      "table.daily",
      {},
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          el("th", {}, t("col.site")),
          DAILY_COLUMNS.map((c) => el("th", {}, t(`rep.${c}`))),
        ),
      ),
      el(
        "tbody",
        {},
        rows.map((r) =>
          el(
            "tr",
            { dataset: { site: r.site } },
            el("td", { title: r.site }, siteName(r.site)),
            DAILY_COLUMNS.map((c) => cell(c, r[c])),
          ),
        ),
        el(
          "tr.total",
          {},
          el("td", {}, t("rep.total")),
          DAILY_COLUMNS.map((c) => cell(c, report.total[c])),
        ),
      ),
    ),
  );
  const parts = rows.map(dailyParts);
  await chart(
    chartBox,
    stackedBars(
      rows.map((r) => siteName(r.site)),
      DAILY_PARTS.map(([key, colour]) => ({
        name: t(`rep.${key}`),
        itemStyle: { color: colour },
        data: parts.map((p) => p[key]),
      })),
      { rotate: rows.length > 6 ? 30 : 0 },
    ),
  );
}

/** The dispatch table's two-row head: each source of hazards with found and rectified under it. */
const groupOf = (column) => column.slice(0, column.lastIndexOf("_"));

/** The dispatch table's two-row head: each source of hazards (self_check_found, …) with found and
 * rectified under it, then the month's alerts. The columns are the report's own, in its order. */
function hazardHead(columns) {
  const groups = [...new Set(columns.map(groupOf))];
  const width = (g) => String(columns.filter((c) => groupOf(c) === g).length);
  const label = (c) => t(groupOf(c) === "alerts" ? `rep.${c}` : `rep.${c.slice(c.lastIndexOf("_") + 1)}`);
  return el(
    "thead",
    {},
    el(
      "tr",
      {},
      el("th", { rowspan: "2" }, t("col.site")),
      groups.map((g) => el("th.group", { colspan: width(g) }, t(`rep.group.${g}`))),
    ),
    el(
      "tr",
      {},
      columns.map((c) => el(`th.num.${c}`, { title: t(`rep.${c}`) }, label(c))),
    ),
  );
}

async function drawMonthly(box, month) {
  const report = await api("/reports/monthly", { params: { month } });
  const chartBox = el("div.chart.monthly-chart");
  const days = report.days ?? [];
  const columns = Object.keys(report.total);
  const hazardRow = (label, r, site) =>
    el(
      `tr${site ? "" : ".total"}`,
      { dataset: site ? { site } : {} },
      el("td", { title: site ?? "" }, label),
      columns.map((c) => cell(c, r[c])),
    );
  fill(
    box,
    el("h3", {}, t("rep.per_day")),
    chartBox,
    el("h3", {}, t("rep.hazards")),
    el(
      "table.monthly",
      {},
      hazardHead(columns),
      el(
        "tbody",
        {},
        report.sites.map((r) => hazardRow(siteName(r.site), r, r.site)),
        report.enterprises.length > 1
          ? report.enterprises.map((r) => hazardRow(enterpriseName(r.enterprise), r, null))
          : null,
        hazardRow(t("rep.total"), report.total, null),
      ),
    ),
  );
  await chart(
    chartBox,
    stackedBars(
      days.map((d) => d.date.slice(5)),
      [...SEVERITIES].reverse().map((s) => ({
        name: t(`sev.${s}`),
        itemStyle: { color: SEVERITY_COLOUR[s] },
        data: days.map((d) => d.raised?.[s] ?? 0),
      })),
    ),
  );
}

function section(kind, param, value, draw) {
  const box = el(`div.report-body.${kind}-body`);
  const input = el(`input.${kind}-picker`, { type: param, value });
  const run = () => {
    fill(box, el("p.loading", {}, t("loading")));
    draw(box, input.value).catch((e) => fill(box, el("p.error", {}, t("error.generic", { msg: describe(e) }))));
  };
  input.addEventListener("change", run);
  run();
  return el(
    `section.report.report-${kind}`,
    {},
    el(
      "div.report-controls",
      {},
      el("h2", {}, t(`rep.${kind}`)),
      el("label", {}, t(`rep.${param}`), input),
      downloads(`/reports/${kind}`, () => [param, input.value]),
    ),
    box,
  );
}

export function mountReports(root) {
  const today = todayCst();
  fill(
    root,
    el(
      "div.reports-page",
      {},
      section("daily", "date", today, drawDaily),
      section("monthly", "month", today.slice(0, 7), drawMonthly),
    ),
  );
  return () => {};
}
