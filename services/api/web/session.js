// Who is logged in (GET /me) and the sites the token may see (GET /sites), shared by the pages.

import { api } from "./api.js";

export const session = { me: null, sites: new Map() };

export async function loadSession() {
  const [me, sites] = await Promise.all([api("/me"), api("/sites")]);
  session.me = me;
  setSites(sites.sites);
  return session;
}

function setSites(list) {
  session.sites = new Map(list.map((s) => [s.code, s]));
}

let refreshing = null;

/** Reload the site list (a site loaded into the catalog after the page was opened). */
export function refreshSites() {
  refreshing ??= api("/sites")
    .then((r) => setSites(r.sites))
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

export function siteName(code) {
  return session.sites.get(code)?.name ?? code;
}

/** An enterprise's name, as the sites it owns carry it. */
export function enterpriseName(code) {
  for (const site of session.sites.values())
    if (site.enterprise === code && site.enterprise_name) return site.enterprise_name;
  return code;
}

export function clearSession() {
  session.me = null;
  session.sites = new Map();
}
