// The dispatch-room single-page app: hash routes, token login, the header (who, scope, live
// state, mute, language) and one alert stream feeding every page.
//   #/login  #/board  #/alerts/ID  #/sites  #/sites/CODE  #/reports

import { onStepResult } from "./actions.js";
import { alarmOn, isMuted, setBaseTitle, setMuted, stopFlash, alarmStats } from "./alarm.js";
import { mountAlert } from "./alert.js";
import { ApiError, api, describe, setToken, token, whenUnauthorized } from "./api.js";
import { mountBoard, store } from "./board.js";
import { disposeDetached } from "./charts.js";
import { getLang, onLangChange, setLang, t, translate } from "./i18n.js";
import { mountReports } from "./reports.js";
import { clearSession, enterpriseName, loadSession, session } from "./session.js";
import { mountSite, mountSites } from "./site.js";
import { stream } from "./sse.js";
import { el, fill } from "./util.js";

const view = document.getElementById("view");
const top = document.querySelector("header.top");
let cleanup = null;

function notFound() {
  cleanup?.();
  cleanup = null;
  fill(
    view,
    el(
      "section.not-found",
      {},
      el("h1", {}, t("notfound.title")),
      el("p", {}, t("notfound.text")),
      el("a", { href: "#/board" }, `← ${t("back")}`),
    ),
  );
}

const ROUTES = [
  [/^#\/board$/, () => mountBoard(view)],
  [/^#\/alerts\/([^/]+)$/, (id) => mountAlert(view, decodeURIComponent(id), { notFound })],
  [/^#\/sites$/, () => mountSites(view)],
  [/^#\/sites\/([^/]+)$/, (code) => mountSite(view, decodeURIComponent(code), { notFound })],
  [/^#\/reports$/, () => mountReports(view)],
];

function login(message = "") {
  top.hidden = true;
  const input = el("input.token", {
    type: "password",
    name: "token",
    autocomplete: "current-password",
    required: true,
  });
  const error = el("p.error", { role: "alert" }, message);
  const form = el(
    "form.login",
    {},
    el("h1", {}, t("app")),
    el("h2", {}, t("login.title")),
    el("label", {}, t("login.token"), input),
    el("p.hint", {}, t("login.hint")),
    error,
    el(
      "div.buttons",
      {},
      el(
        "button.lang-inline",
        { type: "button", onclick: () => setLang(getLang() === "en" ? "zh-CN" : "en") },
        t("nav.lang"),
      ),
      el("button.submit", { type: "submit" }, t("login.submit")),
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    try {
      await start();
      location.hash = "#/board";
    } catch (failure) {
      setToken(null);
      error.textContent = failure instanceof ApiError && failure.status === 401 ? t("login.bad") : describe(failure);
    }
  });
  fill(view, form);
  input.focus();
}

/** After a login (or a reload with a stored token): who am I, what may I see, then the stream. */
async function start() {
  await loadSession();
  store.reset();
  stream.start();
  drawHeader();
}

function drawHeader() {
  top.hidden = false;
  translate(top);
  const me = session.me;
  const names = (me.sites ?? []).map((code) => session.sites.get(code)?.name ?? code);
  const scope =
    me.sites === null ? t("scope.all") : names.length > 2 ? t("scope.sites", { n: names.length }) : names.join("、");
  fill(
    top.querySelector(".who"),
    el("strong.name", {}, me.name || t(`role.${me.role}`)),
    el("span.role", { dataset: { role: me.role } }, t(`role.${me.role}`)),
    me.enterprise ? el("span.enterprise", {}, enterpriseName(me.enterprise)) : null,
    el("span.scope", { title: names.join("、") || scope }, scope),
  );
  drawMute();
  drawLive(stream.live);
}

/** A speaker icon, struck through when muted (inline SVG: no icon font, no emoji font needed). */
function speaker(muted) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "icon");
  const body = muted
    ? "M4 9h4l5-4v14l-5-4H4z M16 9l6 6 M22 9l-6 6"
    : "M4 9h4l5-4v14l-5-4H4z M16 8.5a5 5 0 0 1 0 7 M18.5 6a8.5 8.5 0 0 1 0 12";
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", body);
  svg.append(path);
  return svg;
}

function drawMute() {
  const button = top.querySelector(".mute");
  fill(button, speaker(isMuted()), t(isMuted() ? "nav.unmute" : "nav.mute"));
  button.setAttribute("aria-pressed", String(isMuted()));
}

function drawLive(live) {
  top.querySelector(".live").classList.toggle("on", live);
  top.querySelector(".live-text").textContent = t(live ? "live.on" : "live.off");
}

function highlightNav(hash) {
  for (const link of top.querySelectorAll("nav a")) {
    link.classList.toggle("active", hash.startsWith(`#/${link.dataset.route}`));
  }
}

async function route() {
  const hash = location.hash || "#/board";
  cleanup?.();
  cleanup = null;
  disposeDetached();
  if (!token() && hash !== "#/login") {
    location.replace("#/login");
    return;
  }
  if (hash === "#/login") {
    if (token()) {
      location.replace("#/board");
      return;
    }
    stream.stop();
    clearSession();
    login();
    return;
  }
  if (!session.me) {
    fill(view, el("p.loading", {}, t("loading")));
    try {
      await start();
    } catch (failure) {
      if (failure instanceof ApiError && failure.status === 401) return;
      fill(view, el("p.error", {}, t("error.generic", { msg: describe(failure) })));
      return;
    }
  }
  highlightNav(hash);
  for (const [pattern, mount] of ROUTES) {
    const match = pattern.exec(hash);
    if (match) {
      cleanup = mount(...match.slice(1));
      view.dataset.route = hash.split("/")[1];
      return;
    }
  }
  notFound();
}

function tickClock() {
  const clock = top.querySelector(".clock");
  clock.textContent = new Intl.DateTimeFormat("zh-CN", {
    timeZone: "Asia/Shanghai",
    hour12: false,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  }).format(new Date());
}

function boot() {
  whenUnauthorized(() => {
    stream.stop();
    clearSession();
    if (view.querySelector("form.login")) return; // the login form says it itself
    if (location.hash !== "#/login") location.hash = "#/login";
    else login(t("login.bad"));
  });
  stream.onAlert((alert) => {
    store.apply(alert);
    alarmOn(alert);
  });
  stream.onSync(() => store.load().catch((e) => console.error("board load failed", e)));
  stream.onStatus(drawLive);
  onStepResult((alert) => {
    store.apply(alert);
    alarmOn(alert);
  });
  onLangChange(() => {
    setBaseTitle(t("app"));
    if (session.me) drawHeader();
    route();
  });
  top.querySelector(".mute").addEventListener("click", () => {
    setMuted(!isMuted());
    drawMute();
  });
  top.querySelector(".lang").addEventListener("click", () => setLang(getLang() === "en" ? "zh-CN" : "en"));
  top.querySelector(".logout").addEventListener("click", () => {
    setToken(null);
    stopFlash();
    location.hash = "#/login";
  });
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea, select, dialog") || event.ctrlKey || event.metaKey || event.altKey)
      return;
    if (event.key === "m") top.querySelector(".mute").click();
    else if (event.key === "b") location.hash = "#/board";
    else if (event.key === "r") location.hash = "#/reports";
    else if (event.key === "s") location.hash = "#/sites";
  });
  window.addEventListener("hashchange", route);
  window.sitewatch = { store, stream, alarmStats }; // for the browser tests and a curious operator
  setBaseTitle(t("app"));
  tickClock();
  setInterval(tickClock, 1000);
  route();
}

boot();
