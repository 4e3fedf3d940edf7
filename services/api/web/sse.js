// The alert stream (GET /api/v1/alerts/stream) read with fetch(): EventSource cannot send the
// Authorization header, and a token must not go into a URL. A small Server-Sent Events parser
// over the response body; on a drop it reconnects with Last-Event-ID and gets exactly what it
// missed. A connection that did not resume (the first, or one before any event had an id) says
// so with `sync`, and its listeners reload what they show.

import { authHeaders, unauthorized } from "./api.js";

const STALL_MS = 45000; // the server sends a keepalive every 15 s

export class AlertStream {
  constructor() {
    this.lastId = null;
    this.retryMs = 2000;
    this.live = false;
    this.listeners = new Set();
    this.statusListeners = new Set();
    this.syncListeners = new Set();
    this.controller = null;
    this.running = false;
  }

  /** `fn(alert, eventId)` for every alert change. Returns an unsubscribe function. */
  onAlert(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  onStatus(fn) {
    this.statusListeners.add(fn);
    return () => this.statusListeners.delete(fn);
  }

  /** `fn()` once the stream runs from a fresh position: what was loaded before may be stale. */
  onSync(fn) {
    this.syncListeners.add(fn);
    return () => this.syncListeners.delete(fn);
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.lastId = null;
    this.loop();
  }

  stop() {
    this.running = false;
    this.controller?.abort();
    this.setLive(false);
  }

  setLive(live) {
    this.live = live;
    for (const fn of this.statusListeners) fn(live);
  }

  async loop() {
    while (this.running) {
      const controller = new AbortController();
      this.controller = controller;
      try {
        const headers = authHeaders({ Accept: "text/event-stream" });
        if (this.lastId !== null) headers["Last-Event-ID"] = this.lastId;
        const response = await fetch("/api/v1/alerts/stream", {
          headers,
          signal: controller.signal,
          cache: "no-store",
        });
        if (response.status === 401) {
          this.running = false;
          unauthorized();
          return;
        }
        if (!response.ok || !response.body) throw new Error(`stream: HTTP ${response.status}`);
        const resumed = this.lastId !== null;
        this.setLive(true);
        if (!resumed) for (const fn of this.syncListeners) fn();
        await this.read(response.body, controller);
      } catch (error) {
        if (!this.running) return;
        console.warn("alert stream dropped", error);
      }
      this.setLive(false);
      if (this.running) await new Promise((resolve) => setTimeout(resolve, this.retryMs));
    }
  }

  async read(body, controller) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let stall = setTimeout(() => controller.abort(), STALL_MS);
    let buffer = "";
    let event = { type: "message", data: [], id: null };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        clearTimeout(stall);
        stall = setTimeout(() => controller.abort(), STALL_MS);
        buffer += value;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline).replace(/\r$/, "");
          buffer = buffer.slice(newline + 1);
          if (line === "") {
            this.dispatch(event);
            event = { type: "message", data: [], id: null };
          } else if (!line.startsWith(":")) {
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "data") event.data.push(text);
            else if (field === "event") event.type = text;
            else if (field === "id" && !text.includes("\0")) event.id = text;
            else if (field === "retry" && /^\d+$/.test(text)) this.retryMs = Number(text);
          }
        }
      }
    } finally {
      clearTimeout(stall);
    }
  }

  dispatch(event) {
    if (event.id !== null) this.lastId = event.id;
    if (event.type !== "alert" || event.data.length === 0) return;
    let alert;
    try {
      alert = JSON.parse(event.data.join("\n"));
    } catch (error) {
      console.warn("unreadable alert event", error);
      return;
    }
    for (const fn of this.listeners) {
      try {
        fn(alert, event.id);
      } catch (error) {
        console.error("alert listener failed", error);
      }
    }
  }
}

export const stream = new AlertStream();
