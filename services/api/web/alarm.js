// A new red alert: a short beep (WebAudio, no sound file) and the title bar flashing until the
// window gets the focus back or the alert is acknowledged. The mute switch is kept per browser.

import { t } from "./i18n.js";

const MUTE = "sw.mute";
let audio = null;
let flashTimer = null;
let baseTitle = document.title;
const flashing = new Set(); // ids of the red alerts that made the title flash

export const alarmStats = { beeps: 0, flashes: 0 }; // read by the browser tests

export function isMuted() {
  return localStorage.getItem(MUTE) === "1";
}

export function setMuted(muted) {
  localStorage.setItem(MUTE, muted ? "1" : "0");
}

/** Browsers start audio only after a gesture: the first click or key press unlocks it. */
function unlock() {
  if (!audio) {
    const Context = window.AudioContext ?? window.webkitAudioContext;
    if (!Context) return;
    audio = new Context();
  }
  if (audio.state === "suspended") audio.resume().catch(() => {});
}
window.addEventListener("pointerdown", unlock);
window.addEventListener("keydown", unlock);

function beep() {
  alarmStats.beeps += 1;
  if (isMuted()) return;
  unlock();
  if (!audio) return;
  const start = audio.currentTime + 0.02;
  for (let i = 0; i < 3; i += 1) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "square";
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.0001, start + i * 0.3);
    gain.gain.exponentialRampToValueAtTime(0.25, start + i * 0.3 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + i * 0.3 + 0.2);
    osc.connect(gain).connect(audio.destination);
    osc.start(start + i * 0.3);
    osc.stop(start + i * 0.3 + 0.22);
  }
}

export function setBaseTitle(title) {
  baseTitle = title;
  if (!flashTimer) document.title = title;
}

function startFlash() {
  if (flashTimer) return;
  alarmStats.flashes += 1;
  let on = false;
  flashTimer = setInterval(() => {
    on = !on;
    document.title = on ? `${t("alarm.title")}${baseTitle}` : baseTitle;
  }, 700);
  document.title = `${t("alarm.title")}${baseTitle}`;
}

export function stopFlash() {
  flashing.clear();
  clearInterval(flashTimer);
  flashTimer = null;
  document.title = baseTitle;
}

export function isFlashing() {
  return flashTimer !== null;
}

window.addEventListener("focus", stopFlash);

/** Called for every alert change: a red raise (or an escalation to red) alarms; an
 * acknowledgement or any later step of those alerts stops the flashing. */
export function alarmOn(alert) {
  const red = alert.severity === 4 && alert.state === "open";
  if (red && (alert.change === "raise" || alert.change === "severity")) {
    flashing.add(alert.id);
    beep();
    startFlash();
  } else if (flashing.has(alert.id) && alert.state !== "open") {
    flashing.delete(alert.id);
    if (flashing.size === 0) stopFlash();
  }
}
