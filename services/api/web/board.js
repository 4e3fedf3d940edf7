// The live alert board. The alerts not closed yet are loaded once (GET /alerts, state by state)
// when the stream starts afresh; from then on only the stream's events change them (merged by
// id; a closed alert leaves the board). Most severe first, then the ones still waiting for a
// disposition, then the oldest; a countdown to each alert's same-day deadline.

import { stepButtons } from "./actions.js";
import { api } from "./api.js";
import { t, tr } from "./i18n.js";
import { refreshSites, session, siteName } from "./session.js";
import { SEVERITIES, STATES, el, fill, fmtDuration, fmtNumber, fmtTime } from "./util.js";

const RANK = { open: 0, acknowledged: 1, handled: 2, closed: 3 };
const LIFECYCLE = ["state", "acknowledged_at", "handled_at", "closed_at"];
const LIST_LIMIT = 1000;

class AlertStore {
  constructor() {
    this.alerts = new Map(); // id → alert, closed ones kept as tombstones against late list rows
    this.listeners = new Set();
    this.loaded = false;
    this.loading = null;
  }

  onChange(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(changed) {
    for (const fn of this.listeners) fn(changed);
  }

  /** The not-closed alerts, state by state. Rows the stream already brought are newer: kept. */
  load() {
    const fresh = new Map();
    this.loading = Promise.all(STATES.map((state) => api("/alerts", { params: { state, limit: LIST_LIMIT } }))).then(
      (pages) => {
        for (const page of pages) for (const alert of page.alerts) fresh.set(alert.id, alert);
        for (const [id, alert] of this.alerts) if (alert.streamed) fresh.set(id, alert);
        this.alerts = fresh;
        this.loaded = true;
        this.emit(null);
      },
    );
    return this.loading;
  }

  /** One event of the stream (or a step's answer). A lifecycle never goes back: an older event
   * arriving after a newer answer keeps the newer state. */
  apply(alert) {
    const known = this.alerts.get(alert.id);
    const merged = { ...alert, streamed: true };
    if (known && RANK[known.state] > RANK[alert.state]) for (const key of LIFECYCLE) merged[key] = known[key];
    this.alerts.set(alert.id, merged);
    if (!session.sites.has(alert.site)) refreshSites().then(() => this.emit(null));
    this.emit(merged);
  }

  reset() {
    this.alerts.clear();
    this.loaded = false;
  }

  open() {
    return [...this.alerts.values()].filter((a) => a.state !== "closed");
  }
}

export const store = new AlertStore();

const unhandled = (a) => (a.state === "open" || a.state === "acknowledged" ? 0 : 1);

/** Severity first, then waiting for a disposition before handled, then the oldest raised. */
export function boardOrder(a, b) {
  return b.severity - a.severity || unhandled(a) - unhandled(b) || Date.parse(a.raised_at) - Date.parse(b.raised_at);
}

/** "剩 3:04:05" or "逾期 0:12:00" for the deadline `due`, and whether it has passed. */
export function countdown(alert, now = Date.now()) {
  const left = Date.parse(alert.due_at) - now;
  const over = alert.overdue || left <= 0;
  return { over, text: over ? t("due.over", { t: fmtDuration(-left) }) : t("due.left", { t: fmtDuration(left) }) };
}

const FILTERS = "sw.filters";

function loadFilters() {
  try {
    return { site: "", state: "", severity: "", ...JSON.parse(localStorage.getItem(FILTERS) ?? "{}") };
  } catch {
    return { site: "", state: "", severity: "" };
  }
}

function select(name, value, options, onchange) {
  const node = el(
    `select.filter-${name}`,
    { name, onchange },
    el("option", { value: "" }, t("filter.all")),
    options.map(([v, label]) => el("option", { value: String(v) }, label)),
  );
  node.value = value;
  return node;
}

function matches(alert, filters) {
  return (
    (!filters.site || alert.site === filters.site) &&
    (!filters.state || alert.state === filters.state) &&
    (!filters.severity || String(alert.severity) === filters.severity)
  );
}

function row(alert) {
  const tr_ = el(
    `tr.alert-row.sev-${alert.severity}`,
    {
      dataset: { id: alert.id, site: alert.site, state: alert.state, severity: alert.severity },
      class: [alert.shelved && "shelved", alert.state === "open" && "unacked"].filter(Boolean).join(" ") || null,
      onclick: () => {
        location.hash = `#/alerts/${alert.id}`;
      },
    },
    el("td.sev", {}, el(`span.chip.sev-${alert.severity}`, {}, t(`sevshort.${alert.severity}`))),
    el("td.site", { title: alert.site }, siteName(alert.site)),
    el("td.source", {}, el("a", { href: `#/alerts/${alert.id}` }, alert.source.code)),
    el("td.rule", {}, tr("rule", alert.rule)),
    el("td.message", { title: alert.message }, alert.message),
    el("td.num.value", {}, fmtNumber(alert.value), alert.count > 1 ? el("small", {}, ` ×${alert.count}`) : null),
    el("td.raised", { title: alert.raised_at }, fmtTime(alert.raised_at, { short: true })),
    el("td.due", { dataset: { due: alert.due_at } }),
    el(
      "td.state",
      {},
      el(`span.state.state-${alert.state}`, {}, t(`state.${alert.state}`)),
      alert.cleared ? el("span.tag.cleared", {}, t("cleared")) : null,
      alert.shelved ? el("span.tag.shelved", {}, t("shelved")) : null,
    ),
    el("td.actions", {}, stepButtons(alert)),
  );
  tr_.alert = alert;
  tickRow(tr_);
  return tr_;
}

function tickRow(node, now = Date.now()) {
  const { over, text } = countdown(node.alert, now);
  const cell = node.querySelector("td.due");
  cell.textContent = text;
  node.classList.toggle("overdue", over);
}

/** Mount the board into `root`; returns its cleanup. */
export function mountBoard(root) {
  const filters = loadFilters();
  const rows = new Map(); // id → <tr>, rebuilt only when its alert changed
  const tbody = el("tbody");
  const summary = el("div.summary");
  const empty = el("p.empty", { hidden: true }, t("board.empty"));
  const setFilter = (name) => (event) => {
    filters[name] = event.target.value;
    localStorage.setItem(FILTERS, JSON.stringify(filters));
    render();
  };
  const siteSelect = el("span");
  const drawSiteSelect = () => {
    const sites = [...session.sites.values()].sort((a, b) => a.code.localeCompare(b.code));
    if (filters.site && !session.sites.has(filters.site)) filters.site = "";
    fill(
      siteSelect,
      select(
        "site",
        filters.site,
        sites.map((s) => [s.code, s.name]),
        setFilter("site"),
      ),
    );
  };
  drawSiteSelect();
  const bar = el(
    "div.filters",
    {},
    el("label", {}, t("filter.site"), siteSelect),
    el(
      "label",
      {},
      t("filter.state"),
      select(
        "state",
        filters.state,
        STATES.map((s) => [s, t(`state.${s}`)]),
        setFilter("state"),
      ),
    ),
    el(
      "label",
      {},
      t("filter.severity"),
      select(
        "severity",
        filters.severity,
        SEVERITIES.map((s) => [s, t(`sev.${s}`)]),
        setFilter("severity"),
      ),
    ),
    summary,
  );
  const head = el(
    "thead",
    {},
    el(
      "tr",
      {},
      ["severity", "site", "source", "rule", "message", "value", "raised", "due", "state", "actions"].map((c) =>
        el(`th.${c}`, {}, t(`col.${c}`)),
      ),
    ),
  );
  fill(root, el("section.board", {}, bar, el("table.alerts", {}, head, tbody), empty));

  let frame = 0;
  function render() {
    frame = 0;
    const open = store.open();
    const shown = open.filter((a) => matches(a, filters)).sort(boardOrder);
    const wanted = new Set(shown.map((a) => a.id));
    for (const [id, node] of rows) {
      if (!wanted.has(id)) {
        node.remove();
        rows.delete(id);
      }
    }
    shown.forEach((alert, index) => {
      let node = rows.get(alert.id);
      if (!node || node.alert !== alert) {
        const fresh = row(alert);
        if (node) node.replaceWith(fresh);
        else if (store.loaded && alert.change === "raise") fresh.classList.add("fresh");
        rows.set(alert.id, fresh);
        node = fresh;
      }
      if (tbody.children[index] !== node) tbody.insertBefore(node, tbody.children[index] ?? null);
    });
    empty.hidden = !store.loaded || shown.length > 0;
    const counts = Object.fromEntries(SEVERITIES.map((s) => [s, 0]));
    let overdue = 0;
    for (const a of open) {
      counts[a.severity] += 1;
      if (countdown(a).over) overdue += 1;
    }
    fill(
      summary,
      el("span.total", {}, t("board.count", { n: open.length })),
      SEVERITIES.map((s) => el(`span.chip.sev-${s}`, { title: t(`sev.${s}`) }, `${t(`sevshort.${s}`)} ${counts[s]}`)),
      el(`span.overdue-count${overdue ? ".has" : ""}`, {}, t("board.overdue", { n: overdue })),
    );
    root.dataset.loaded = store.loaded ? "1" : "0";
  }
  const schedule = (changed) => {
    if (changed === null) drawSiteSelect();
    if (!frame) frame = requestAnimationFrame(render);
  };
  const unsubscribe = store.onChange(schedule);
  const ticker = setInterval(() => {
    const now = Date.now();
    for (const node of rows.values()) tickRow(node, now);
  }, 1000);
  render();
  return () => {
    unsubscribe();
    clearInterval(ticker);
    cancelAnimationFrame(frame);
  };
}
