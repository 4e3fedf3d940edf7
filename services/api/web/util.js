// DOM building and site-local time. Every time the API sends is an RFC 3339 string in the site's
// own time zone: it is shown from the string itself (its wall clock and offset), never converted
// to the browser's zone.

/** `el("td.num", {title: "x"}, child, ...)`: an element with classes, attributes and children
 * (strings become text, null/false are skipped). `on*` attributes take listeners. */
export function el(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  const node = document.createElement(tag || "div");
  if (classes.length) node.className = classes.join(" ");
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "class") node.className += ` ${value}`;
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

/** Replace the children of `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** The site-local wall clock of an API time: {date: "2026-11-25", time: "09:15:02", offset}. */
export function wall(s) {
  const m = typeof s === "string" ? RFC3339.exec(s) : null;
  if (!m) return null;
  return { date: `${m[1]}-${m[2]}-${m[3]}`, time: `${m[4]}:${m[5]}:${m[6]}`, offset: m[7] };
}

/** "2026-11-25 09:15:02" (or "11-25 09:15:02" with short) in the site's own time. */
export function fmtTime(s, { short = false } = {}) {
  const w = wall(s);
  if (!w) return s ?? "";
  return `${short ? w.date.slice(5) : w.date} ${w.time}`;
}

export function offsetMinutes(s) {
  const w = wall(s);
  if (!w || w.offset === "Z") return 0;
  const sign = w.offset[0] === "-" ? -1 : 1;
  return sign * (Number(w.offset.slice(1, 3)) * 60 + Number(w.offset.slice(4, 6)));
}

/** Epoch ms moved by the string's offset, so that UTC getters (ECharts with `useUTC`) read the
 * site's wall clock. */
export function wallMs(s) {
  return Date.parse(s) + offsetMinutes(s) * 60000;
}

/** A duration as "H:MM:SS", with days in front past 24 h. */
export function fmtDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const days = Math.floor(total / 86400);
  const h = Math.floor((total % 86400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  const hms = `${h}:${String(m).padStart(2, "0")}:${String(sec).padStart(2, "0")}`;
  return days ? `${days}d ${hms}` : hms;
}

export function fmtNumber(value, digits = 2) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const n = Number(value);
  return Number.isInteger(n) ? String(n) : n.toFixed(digits).replace(/\.?0+$/, "");
}

/** Today's date at UTC+8 (the API's default day for reports), "YYYY-MM-DD". */
export function todayCst() {
  return new Date(Date.now() + 8 * 3600e3).toISOString().slice(0, 10);
}

export const SEVERITIES = [4, 3, 2, 1];
export const STATES = ["open", "acknowledged", "handled"];
export const SEVERITY_COLOUR = { 4: "#e5322d", 3: "#f08c00", 2: "#f2c200", 1: "#2f7be5" };

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** An epoch-ms time shown in the site's wall clock, taking the offset of `ref`, an API time of
 * the same site. */
export function fmtMsLike(ms, ref) {
  if (ms === null || ms === undefined) return "–";
  if (typeof ms === "string") return fmtTime(ms);
  const shifted = new Date(ms + offsetMinutes(ref) * 60000).toISOString();
  return `${shifted.slice(0, 10)} ${shifted.slice(11, 19)}`;
}
