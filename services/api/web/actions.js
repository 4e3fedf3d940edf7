// The human steps on an alert (签收 acknowledge, 处置 handle, 销号 close), from the board or the
// alert page: a dialog asks who and, to handle, the disposition (required here as on the server);
// the server's 409/422 reason is shown as it said it.

import { describe, step } from "./api.js";
import { t, tr } from "./i18n.js";
import { session } from "./session.js";
import { el } from "./util.js";

const BY = "sw.by";
const NEXT = { open: ["acknowledge", "handle"], acknowledged: ["handle"], handled: ["close"], closed: [] };

let applyResult = () => {};

/** Where a step's answer (the alert object) goes, so the board shows it before its SSE event. */
export function onStepResult(fn) {
  applyResult = fn;
}

/** Buttons for the steps allowed from the alert's state. */
export function stepButtons(alert, { onDone } = {}) {
  return (NEXT[alert.state] ?? []).map((action) =>
    el(
      `button.step.step-${action}`,
      {
        type: "button",
        dataset: { action },
        onclick: async (event) => {
          event.stopPropagation();
          const result = await askStep(alert, action);
          if (result) onDone?.(result);
        },
      },
      t(`act.${action}`),
    ),
  );
}

function defaultBy() {
  return localStorage.getItem(BY) || session.me?.name || t(`role.${session.me?.role ?? "operator"}`);
}

/** Open the step dialog; resolves with the updated alert, or null when cancelled. */
export function askStep(alert, action) {
  return new Promise((resolve) => {
    const by = el("input.by", { name: "by", value: defaultBy(), maxlength: "200", autocomplete: "off" });
    const note = el("textarea.note", { name: "note", rows: "4", maxlength: "4000" });
    const error = el("p.error", { role: "alert" });
    const confirm = el("button.confirm", { type: "submit" }, t(`act.${action}`));
    const cancel = el("button.cancel", { type: "button" }, t("act.cancel"));
    const title = t("dlg.title", { act: t(`act.${action}`), alert: `${alert.source.code} ${tr("rule", alert.rule)}` });
    const form = el(
      "form.step-form",
      { method: "dialog" },
      el("h2", {}, title),
      el("p.message", {}, alert.message),
      el("label", {}, t("dlg.by"), by),
      el("label", {}, t(action === "handle" ? "dlg.disposition" : "dlg.note"), note),
      error,
      el("div.buttons", {}, cancel, confirm),
    );
    const dialog = el(`dialog.step-dialog.step-${action}`, {}, form);
    let result = null;
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      if (!by.value.trim()) {
        error.textContent = t("dlg.need_by");
        by.focus();
        return;
      }
      if (action === "handle" && !note.value.trim()) {
        error.textContent = t("dlg.need_disposition");
        note.focus();
        return;
      }
      confirm.disabled = true;
      try {
        result = await step(alert.id, action, by.value.trim(), note.value.trim());
        localStorage.setItem(BY, by.value.trim());
        applyResult(result);
        dialog.close();
      } catch (failure) {
        error.textContent = describe(failure);
      } finally {
        confirm.disabled = false;
      }
    });
    document.body.append(dialog);
    dialog.showModal();
    (action === "handle" ? note : confirm).focus();
  });
}
