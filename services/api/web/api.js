// The HTTP API with the token of the login (kept in localStorage, sent as a bearer header: never
// in a URL). A 401 anywhere forgets the token and goes to the login page.

const TOKEN = "sw.token";

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.detail = detail;
  }
}

export function token() {
  return localStorage.getItem(TOKEN);
}

export function setToken(value) {
  if (value) localStorage.setItem(TOKEN, value);
  else localStorage.removeItem(TOKEN);
}

export function authHeaders(extra = {}) {
  return { Authorization: `Bearer ${token()}`, ...extra };
}

let onUnauthorized = () => {};

/** What to do when the API answers 401 (the app goes to its login page). */
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

export function unauthorized() {
  setToken(null);
  onUnauthorized();
}

async function send(path, { method = "GET", body, params } = {}) {
  const url = new URL(`/api/v1${path}`, location.origin);
  for (const [key, value] of Object.entries(params ?? {})) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, value);
  }
  const headers = authHeaders(body === undefined ? {} : { "Content-Type": "application/json" });
  const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 401) {
    unauthorized();
    throw new ApiError(401, "unauthorized");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail ?? detail;
    } catch {
      /* not JSON */
    }
    throw new ApiError(response.status, detail);
  }
  return response;
}

/** GET (or another method) a JSON resource; throws ApiError with the server's `detail`. */
export async function api(path, options = {}) {
  return (await send(path, options)).json();
}

/** A report download: fetched with the token, handed to the browser as a file. */
export async function download(path, params, fallbackName) {
  const response = await send(path, { params });
  const disposition = response.headers.get("Content-Disposition") ?? "";
  const name = /filename="([^"]+)"/.exec(disposition)?.[1] ?? fallbackName;
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** A page's data from `load()`; null when the page was left meanwhile (`page.stopped`) or when
 * the API answered 404, which also stops the page and shows `page.notFound()`: an unknown id and
 * another enterprise's site look the same. */
export async function pageData(page, load) {
  try {
    return await load();
  } catch (error) {
    if (page.stopped) return null;
    if (error instanceof ApiError && error.status === 404) {
      page.stopped = true;
      page.notFound();
      return null;
    }
    throw error;
  }
}

/** A human step on an alert: acknowledge, handle or close, with `{by, note}`. */
export function step(id, action, by, note) {
  return api(`/alerts/${encodeURIComponent(id)}/${action}`, { method: "POST", body: { by, note } });
}

/** A readable message of an error (the server's 409/422 reason as it said it). */
export function describe(error) {
  if (error instanceof ApiError) {
    const detail = error.detail;
    if (Array.isArray(detail)) return detail.map((d) => d.msg ?? JSON.stringify(d)).join("; ");
    return typeof detail === "string" ? detail : JSON.stringify(detail);
  }
  return String(error?.message ?? error);
}
