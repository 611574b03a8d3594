// digitrec page: draw (Pointer Events: mouse, touch, pen) or show a photo; the server answers.
// No framework, no network beyond this server. Coordinates are "logical" canvas pixels
// (280 x 280, or 560 x 280 in number mode); the backing store is scaled by devicePixelRatio,
// but what is sent is drawn again at SEND_SCALE, whatever the screen.
"use strict";

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const overlay = $("overlay");
const ctx = canvas.getContext("2d");
const octx = overlay.getContext("2d");
const stage = $("stage");

const HEIGHT = 280;
const WIDTH = { digit: 280, number: 560 };
// The drawing is sent at its logical size (280 x 280, 560 x 280), never at device pixels: on
// real pen strokes single digits read the same at any size, and numbers 66.0% right against
// 67.3% at twice the size, in a third of the time (benchmarks/page_phone.py --part sizes,
// BENCHMARKS.md "The page on a phone").
const SEND_SCALE = 1;
// While drawing, a live answer at most every LIVE_MS, and no oftener than every 3 answer
// times: when the pen lifts, a live request is then in flight a third of the time at most,
// so the final answer waits on it little, and a slow server is not kept busy by live ones.
const LIVE_MS = 100;
const LIVE_SHARE = 3;
const PHOTO_MAX_SIDE = 1024;      // photos are downscaled before upload (phone photos are ~12 MP)
const INK = "#111";
const UNDO_DEPTH = 100;           // drawings Undo can go back to

const state = {
  mode: "digit",
  strokes: [],        // [{size, points: [[x, y], ...]}] in logical pixels
  drawing: null,      // the stroke under the pointer
  pointerId: null,
  photo: null,        // {bitmap, dataUrl, file, w, h, fit: {x, y, s}}
  history: [],        // what Undo brings back: [{strokes, photo}], the latest last
  sent: null,         // {image, predicted}: what the correction buttons refer to
  reading: null,      // number mode: the number read and the person's edits (showReading)
  answerInView: true, // is #answer wholly on screen? If not, the peek by the mode switch shows it
  uncertainBelow: 0.5, // a read digit under this confidence is uncertain (the model card's figure)
  // Asking the server: one request at a time, always about the latest drawing.
  version: 0,         // bumped by every change to the drawing
  epoch: 0,           // bumped when the drawing is replaced (clear, undo, photo, mode): answers
                      // to an older epoch are dropped; to an older version, shown as live
  inflight: false,
  liveAt: -1e9,       // when the last request went out (performance.now())
  took: 0,            // how long the last answer took, ms
  liveTimer: null,
  answered: { version: 0, epoch: 0, final: true },  // the answer on screen: to which drawing
  lastAnswer: null,   // {number, data, image}: the last answer shown, made final when the pen lifts
};

// ---------------------------------------------------------------- canvas setup

function logicalWidth() { return WIDTH[state.mode]; }

function resize() {
  const dpr = Math.max(1, Math.min(window.devicePixelRatio || 1, 3));
  const w = logicalWidth();
  for (const c of [canvas, overlay]) {
    c.width = Math.round(w * dpr);
    c.height = Math.round(HEIGHT * dpr);
    c.getContext("2d").setTransform(dpr, 0, 0, dpr, 0, 0);
  }
  stage.style.setProperty("--ratio", `${w} / ${HEIGHT}`);
  redraw();
}

function redraw() {
  ctx.clearRect(0, 0, logicalWidth(), HEIGHT);
  if (state.photo) {
    const { bitmap, w, h } = state.photo;
    const s = Math.min(logicalWidth() / w, HEIGHT / h);
    const fit = { s, x: (logicalWidth() - w * s) / 2, y: (HEIGHT - h * s) / 2 };
    state.photo.fit = fit;
    if (bitmap) ctx.drawImage(bitmap, fit.x, fit.y, w * s, h * s);
  }
  for (const stroke of state.strokes) drawStroke(ctx, stroke);
  if (!state.reading) octx.clearRect(0, 0, logicalWidth(), HEIGHT);
  const empty = !state.strokes.length && !state.photo;
  $("hint").hidden = !empty;
  setEnabled($("undo"), state.history.length > 0);
  setEnabled($("clear"), !empty);
}

// A control turned off while it has the keyboard focus hands the focus on (Clear to Undo, Undo
// to the drawing area) instead of dropping it to the top of the page.
function setEnabled(button, on) {
  const had = document.activeElement === button;
  button.disabled = !on;
  if (had && !on) (!$("undo").disabled ? $("undo") : canvas).focus();
}

function drawStroke(g, stroke) {
  const pts = stroke.points;
  g.strokeStyle = INK;
  g.fillStyle = INK;
  g.lineWidth = stroke.size;
  g.lineCap = "round";
  g.lineJoin = "round";
  if (pts.length === 1) {
    g.beginPath();
    g.arc(pts[0][0], pts[0][1], stroke.size / 2, 0, Math.PI * 2);
    g.fill();
    return;
  }
  g.beginPath();
  g.moveTo(pts[0][0], pts[0][1]);
  for (let i = 1; i < pts.length; i++) g.lineTo(pts[i][0], pts[i][1]);
  g.stroke();
}

// ---------------------------------------------------------------- drawing, undo

function toLogical(e) {
  const r = canvas.getBoundingClientRect();
  return [(e.clientX - r.left) * logicalWidth() / r.width, (e.clientY - r.top) * HEIGHT / r.height];
}

// Undo goes back to the drawing before the last change: a stroke, Clear, Escape or a photo.
function remember() {
  state.history.push({ strokes: state.strokes.slice(), photo: state.photo });
  if (state.history.length > UNDO_DEPTH) state.history.shift();
}

canvas.addEventListener("pointerdown", (e) => {
  if (state.pointerId !== null || (e.pointerType === "mouse" && e.button !== 0)) return;
  e.preventDefault();
  canvas.setPointerCapture(e.pointerId);
  remember();
  if (state.photo) { state.photo = null; state.strokes = []; state.epoch++; }  // a new digit
  if (state.reading || state.sent) forgetAnswer();  // what was read is not what is drawn now
  state.pointerId = e.pointerId;
  state.drawing = { size: Number($("brush").value), points: [toLogical(e)] };
  state.strokes.push(state.drawing);
  redraw();
  changed();
});

canvas.addEventListener("pointermove", (e) => {
  if (e.pointerId !== state.pointerId || !state.drawing) return;
  e.preventDefault();
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
  for (const ev of events.length ? events : [e]) state.drawing.points.push(toLogical(ev));
  redraw();
  changed();
});

function endStroke(e) {
  if (e.pointerId !== state.pointerId) return;
  state.pointerId = null;
  state.drawing = null;
  ask();  // the final answer, at once
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

function undo() {
  const before = state.history.pop();
  if (!before) return;
  state.strokes = before.strokes;
  state.photo = before.photo;
  replaced();
}

function clearAll() {
  if (!state.strokes.length && !state.photo) return;
  remember();
  state.strokes = [];
  state.photo = null;
  replaced();
}

// A new stroke: the digits read and the corrections offered were for the drawing before it.
function forgetAnswer() {
  state.reading = null;
  state.sent = null;
  enableCorrection(false);
  $("number-fix").hidden = true;
  octx.clearRect(0, 0, logicalWidth(), HEIGHT);
}

// The drawing was replaced as a whole: answers still on their way are for another drawing.
function replaced() {
  state.epoch++;
  state.reading = null;
  redraw();
  changed();
}

$("undo").addEventListener("click", undo);
$("clear").addEventListener("click", clearAll);

// A tap that a touch screen did not turn into a click is clicked here. Right after a fast
// stroke Chromium may send a tap's pointer events but no click (tap suppression after a
// fling): Clear was lost and the next digit drawn over the old one. A button lifted on by the
// finger that lifted on it and not clicked within 300 ms is clicked once.
let tap = null;
document.addEventListener("pointerdown", (e) => {
  const button = e.pointerType === "mouse" ? null : e.target.closest("button");
  tap = button ? { button, clicked: false } : null;
}, true);
document.addEventListener("pointercancel", () => { tap = null; }, true);
document.addEventListener("click", (e) => { if (tap && tap.button.contains(e.target)) tap.clicked = true; }, true);
document.addEventListener("pointerup", (e) => {
  const t = tap;
  if (!t || !t.button.contains(document.elementFromPoint(e.clientX, e.clientY))) return;
  setTimeout(() => {
    if (!t.clicked && !t.button.disabled && t.button.isConnected) t.button.click();
  }, 300);
}, true);
$("brush").addEventListener("input", (e) => e.target.setAttribute("aria-valuetext", `${e.target.value} pixels`));

const typing = (el) => el instanceof HTMLInputElement && el.type === "text";

document.addEventListener("keydown", (e) => {
  if ((e.ctrlKey || e.metaKey) && !e.shiftKey && e.key.toLowerCase() === "z") {
    if (typing(e.target)) return;  // the text field's own undo
    e.preventDefault();
    undo();
  } else if (e.key === "Escape") {
    if (state.reading && state.reading.selected !== null) closePicker();  // the picker first
    else if (!$("retype-form").hidden) closeRetype();
    else if (!typing(e.target)) clearAll();  // Ctrl+Z brings it back
  }
});

// ---------------------------------------------------------------- photos: upload, camera, drop, paste

async function readDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

async function loadPhoto(file) {
  if (!file) return;
  let bitmap = null;
  try { bitmap = await createImageBitmap(file); } catch { /* the server may still read it (TIFF) */ }
  let dataUrl;
  if (!bitmap) {
    dataUrl = await readDataUrl(file);
  } else {
    const scale = Math.min(1, PHOTO_MAX_SIDE / Math.max(bitmap.width, bitmap.height));
    if (scale === 1 && file.size < 3_000_000) {
      dataUrl = await readDataUrl(file);  // small enough: send the file as it is
    } else {
      const c = document.createElement("canvas");
      c.width = Math.round(bitmap.width * scale);
      c.height = Math.round(bitmap.height * scale);
      c.getContext("2d").drawImage(bitmap, 0, 0, c.width, c.height);
      dataUrl = file.type === "image/jpeg" ? c.toDataURL("image/jpeg", 0.92) : c.toDataURL("image/png");
      bitmap = c;
    }
  }
  remember();
  state.strokes = [];
  state.photo = { bitmap, dataUrl, w: bitmap ? bitmap.width : 1, h: bitmap ? bitmap.height : 1 };
  replaced();
}

for (const id of ["file", "camera"]) {
  $(id).addEventListener("change", (e) => { loadPhoto(e.target.files[0]); e.target.value = ""; });
}
stage.addEventListener("dragover", (e) => { e.preventDefault(); stage.classList.add("dragging"); });
stage.addEventListener("dragleave", () => stage.classList.remove("dragging"));
stage.addEventListener("drop", (e) => {
  e.preventDefault();
  stage.classList.remove("dragging");
  loadPhoto(e.dataTransfer.files[0]);
});
document.addEventListener("paste", (e) => {
  for (const item of e.clipboardData ? e.clipboardData.items : []) {
    if (item.type.startsWith("image/")) { e.preventDefault(); loadPhoto(item.getAsFile()); return; }
  }
});

// ---------------------------------------------------------------- modes

function setMode(mode) {
  state.mode = mode;
  $("mode-digit").setAttribute("aria-pressed", String(mode === "digit"));
  $("mode-number").setAttribute("aria-pressed", String(mode === "number"));
  document.body.dataset.mode = mode;
  $("hint").textContent = mode === "number" ? "Write a number here" : "Draw here";
  canvas.setAttribute("aria-label", `Drawing area: write ${mode === "number" ? "a number" : "a digit"} with the mouse, a finger or a pen`);
  state.reading = null;
  resize();
  replaced();
}
$("mode-digit").addEventListener("click", () => setMode("digit"));
$("mode-number").addEventListener("click", () => setMode("number"));

// ---------------------------------------------------------------- asking the server

// The drawing as sent: the strokes drawn again at SEND_SCALE on a transparent background.
const sendCanvas = document.createElement("canvas");
function currentImage() {
  if (state.photo) return state.photo.dataUrl;
  if (!state.strokes.length) return null;
  sendCanvas.width = Math.round(logicalWidth() * SEND_SCALE);
  sendCanvas.height = Math.round(HEIGHT * SEND_SCALE);
  const g = sendCanvas.getContext("2d");
  g.setTransform(SEND_SCALE, 0, 0, SEND_SCALE, 0, 0);
  for (const stroke of state.strokes) drawStroke(g, stroke);
  return sendCanvas.toDataURL("image/png");
}

async function post(url, body) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  let data;
  try { data = await res.json(); } catch { data = { error: `the server answered ${res.status}` }; }
  return { ok: res.ok, status: res.status, data, retryAfter: Number(res.headers.get("Retry-After")) };
}

// A correction the server did not keep, said kindly: its "error" text and what to do next.
function notSaved({ status, data, retryAfter }) {
  const why = String(data.error || `the server answered ${status}`).replace(/[.\s]+$/, "");
  if (status === 429) {
    return `Not saved yet: ${why}. Thank you for the help! Please try again ${retryAfter > 0 ? `in ${retryAfter} s` : "in a moment"}.`;
  }
  if (status === 503 || status === 507) {
    return `Not saved: ${why}. Recognising digits still works; please try saving again later.`;
  }
  return `Not saved: ${why}.`;
}

function setStatus(id, text, problem = false) {
  $(id).textContent = text;
  $(id).classList.toggle("problem", problem);
}

// The drawing changed: ask about it.
function changed() {
  state.version++;
  ask();
}

// One request at a time. While a stroke is drawn, live answers at most every LIVE_MS; when the
// pen lifts, the final one goes at once (or as soon as the one in flight is back). An answer
// is final when it is about the drawing as it is and no stroke is being drawn.
function ask() {
  clearTimeout(state.liveTimer);
  state.liveTimer = null;
  if (!state.strokes.length && !state.photo) {  // nothing to ask about
    state.answered = { version: state.version, epoch: state.epoch, final: true };
    state.lastAnswer = null;
    showIdle();
    return;
  }
  if (state.inflight) { setBusy(); return; }  // send() asks again when its answer is back
  const a = state.answered;
  if (a && a.version === state.version && a.epoch === state.epoch) {
    if (state.pointerId === null && !a.final) finalise();  // the pen lifted on a drawing answered
    setBusy();
    return;
  }
  const every = Math.max(LIVE_MS, LIVE_SHARE * state.took);
  const wait = state.pointerId !== null ? state.liveAt + every - performance.now() : 0;
  if (wait > 0) state.liveTimer = setTimeout(ask, wait);
  else send();
  setBusy();
}

async function send() {
  const { version, epoch } = state;
  const number = state.mode === "number";
  const image = currentImage();
  state.inflight = true;
  state.liveAt = performance.now();
  let answer = null, side = "server";
  try {
    const mine = number ? null : await answerOnDevice();  // the end of this file
    if (mine) { answer = { ok: true, data: mine }; side = "device"; }
    else answer = await post(number ? "/api/v1/read" : "/api/v1/predict", { image });
  } catch { /* answer stays null: the server cannot be reached */ }
  state.inflight = false;
  state.took = performance.now() - state.liveAt;
  if (epoch === state.epoch) {
    const final = version === state.version && state.pointerId === null;
    state.answered = { version, epoch, final };
    if (!answer || !answer.ok) {
      state.lastAnswer = null;
      showError(answer ? answer.data.error || "something went wrong" : "Cannot reach the server.");
    } else {
      state.lastAnswer = { number, data: answer.data, image };
      if (number) showReading(answer.data, image, final);
      else showPrediction(answer.data, image, final);
      setAnsweredBy(side);
    }
  }
  ask();  // a newer drawing, if there is one
}

// aria-busy on the result while an answer is on its way (screen readers wait; so can tests);
// data-answer says what is shown: "none", "live" (while drawing) or "final".
function setBusy() {
  const a = state.answered;
  const current = a && a.version === state.version && a.epoch === state.epoch;
  $("result").setAttribute("aria-busy", String(state.inflight || state.liveTimer !== null || !current));
}

function setShown(kind) {
  $("result").dataset.answer = kind;
}

// ---------------------------------------------------------------- showing answers

const pct = (p) => `${(p * 100).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1)}%`;
const worthShowing = (c) => c.probability >= 0.005;  // a "0%" candidate says nothing

function buildBars() {
  const bars = $("probabilities");
  for (let d = 0; d < 10; d++) {
    const row = document.createElement("div");
    row.className = "bar";
    row.setAttribute("role", "listitem");
    row.innerHTML = `<span class="bar-digit">${d}</span><span class="bar-track"><span class="bar-fill"></span></span><span class="bar-value">0%</span>`;
    bars.appendChild(row);
  }
}

function setBars(probabilities, best) {
  const rows = $("probabilities").children;
  probabilities.forEach((p, d) => {
    rows[d].querySelector(".bar-fill").style.width = `${(p * 100).toFixed(1)}%`;
    rows[d].querySelector(".bar-value").textContent = pct(p);
    rows[d].classList.toggle("best", d === best);
    rows[d].setAttribute("aria-label", `${d}: ${pct(p)}`);
  });
}

// The answer, and its copy in the peek (digit and confidence, by the mode switch) for when the
// answer itself is off screen: on a phone, below the drawing area.
function setAnswer(text, kind, note = "") {
  const answer = $("answer");
  answer.textContent = text;
  answer.className = `answer ${kind}`;
  $("peek-answer").textContent = text;
  $("peek-answer").className = text.length > 6 ? "longer" : text.length > 3 ? "long" : "";
  $("peek-confidence").textContent = note;
  updatePeek();
}

// Screen readers hear final answers only (not every live answer while a digit is drawn).
function announce(text) {
  $("announce").textContent = text;
}

function updatePeek() {
  $("peek").classList.toggle("shown", !state.answerInView && !$("answer").classList.contains("empty"));
}

function enableCorrection(on) {
  for (let d = 0; d < 10; d++) {
    $(`correct-${d}`).disabled = !on;
    $(`correct-${d}`).classList.remove("chosen");
  }
  setStatus("feedback-status", "");
}

function showIdle() {
  setShown("none");
  setAnswer("?", "empty");
  $("verdict").textContent = state.mode === "number" ? "Write a number to start" : "Draw a digit to start";
  state.reading = null;
  $("number-fix").hidden = true;
  $("confidence").textContent = "";
  $("top3").replaceChildren();
  setBars(new Array(10).fill(0), -1);
  $("preprocessed").classList.add("blank");
  $("error").textContent = "";
  octx.clearRect(0, 0, logicalWidth(), HEIGHT);
  state.sent = null;
  enableCorrection(false);
  announce("");
  setBusy();
}

// "It's a 7, 98% sure", "Not sure: a 3 or a 9?", or nothing to read. A live answer (the digit
// still being drawn) is only the likely digit, said to be provisional.
function showPrediction(p, image, final) {
  $("error").textContent = "";
  const candidates = p.candidates.filter(worthShowing);
  if (!final) {
    setShown("live");
    const guess = p.digit ?? (candidates[0] ? candidates[0].digit : null);
    if (guess === null) setAnswer("?", "empty live");
    else setAnswer(String(guess), "digit live", "so far");
    $("verdict").textContent = guess === null ? "Drawing…" : `Looks like a ${guess} so far`;
    $("confidence").textContent = "Lift the pen for the answer";
    $("top3").replaceChildren();
    return;
  }
  setShown("final");
  if (p.digit !== null) {
    setAnswer(String(p.digit), "digit", pct(p.confidence));
    $("verdict").textContent = `It's a ${p.digit}`;
    $("confidence").textContent = `${pct(p.confidence)} sure`;
    announce(`It's a ${p.digit}, ${pct(p.confidence)} sure`);
  } else if (p.reason === "empty") {
    setAnswer("?", "empty");
    $("verdict").textContent = "Nothing to read: no ink found";
    $("confidence").textContent = "";
    announce("Nothing to read: no ink found");
  } else {
    const names = candidates.slice(0, 3).map((c) => `${c.digit === 8 ? "an" : "a"} ${c.digit}`);
    const which = names.length > 1 ? `${names.slice(0, -1).join(", ")} or ${names.at(-1)}` : names[0];
    setAnswer("?", "unsure", "not sure");
    $("verdict").textContent = which ? `Not sure: ${which}?` : "Not sure";
    $("confidence").textContent = `Best guess ${p.candidates[0].digit}, only ${pct(p.confidence)} sure. Which was it?`;
    announce(`${$("verdict").textContent} ${$("confidence").textContent}`);
  }
  const top = $("top3");
  top.replaceChildren(...(p.reason === "empty" ? [] : candidates).map((c) => {
    const li = document.createElement("li");
    li.innerHTML = `<b>${c.digit}</b> ${pct(c.probability)}`;
    return li;
  }));
  setBars(p.probabilities, p.digit === null ? -1 : p.digit);
  $("preprocessed").src = p.preprocessed;
  $("preprocessed").classList.toggle("blank", p.reason === "empty");
  if (p.reason === "empty") {
    state.sent = null;
    enableCorrection(false);
  } else if (!state.sent || state.sent.image !== image) {
    // A new image: the correction buttons now refer to it. The same image answered again
    // keeps a correction already made.
    state.sent = { image, predicted: p.digit };
    enableCorrection(true);
  }
}

// The pen lifted on a drawing whose live answer is on screen: that answer is the final one.
function finalise() {
  state.answered.final = true;
  const last = state.lastAnswer;
  if (!last) return;
  if (last.number) showReading(last.data, last.image, true);
  else showPrediction(last.data, last.image, true);
}

// ---------------------------------------------------------------- number mode: the digits read, and fixing them

// A read digit's top guesses as [{digit, probability}] (the API may give `probability` or `confidence`).
function candidatesOf(d) {
  return (d.candidates || []).map((c) => ({ digit: c.digit, probability: c.probability ?? c.confidence ?? 0 }));
}

function randomId() {
  return Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");
}

function showReading(r, image, final) {
  $("error").textContent = "";
  if (!final) {
    // Live, while a number is written: the digits so far, said to be provisional; nothing to fix yet.
    setShown("live");
    const text = r.digits.map((d) => d.digit ?? "?").join("");
    if (!r.digits.length) setAnswer("?", "empty live");
    else setAnswer(text, "number live", "so far");
    $("verdict").textContent = r.digits.length ? `So far: ${text}` : "Writing…";
    $("confidence").textContent = "Lift the pen for the answer";
    $("top3").replaceChildren();
    if (!state.reading) $("number-fix").hidden = true;
    return;
  }
  setShown("final");
  if (!r.digits.length) {
    state.reading = null;
    $("number-fix").hidden = true;
    setAnswer("?", "empty");
    $("verdict").textContent = "No digits found";
    $("confidence").textContent = "";
    $("top3").replaceChildren();
    drawBoxes();
    announce("No digits found");
    return;
  }
  // The same image answered again (a mode switched back) keeps the fixes made.
  if (!state.reading || state.reading.image !== image) {
    const unsure = r.text === null && r.reason === "uncertain";
    // Which digits the model doubts: those it says so of, else those under its threshold.
    const doubted = (d) => d.digit === null || (unsure
      && (d.uncertain ?? (d.reason ? d.reason === "uncertain" : d.confidence < state.uncertainBelow)));
    const digits = r.digits.map((d) => ({
      // An uncertain digit keeps its best guess; should it come as null, its first candidate.
      digit: d.digit ?? candidatesOf(d).map((c) => c.digit)[0] ?? null,
      confidence: d.confidence, box: d.box, candidates: candidatesOf(d),
      uncertain: doubted(d),
      chosen: null,    // what the person says it is
      saved: null,     // the label the server has stored for it
      deleted: false,  // the person says it is no digit (a piece of another, a stray mark)
      inserted: false, // a digit the person added: the reading missed it
    }));
    // The number is uncertain as a whole though each digit passes: ask about its weakest digit.
    if (unsure && !digits.some((d) => d.uncertain)) {
      digits.reduce((a, b) => (b.confidence < a.confidence ? b : a)).uncertain = true;
    }
    const confidence = r.confidence ?? digits.reduce((p, d) => p * d.confidence, 1);  // of the whole number
    state.reading = {
      image, drawing: !state.photo, digits, selected: null, confidence,
      typed: null,      // the whole number as the person typed it
      id: randomId(),   // the stored rows of this image: a later one supersedes an earlier one
      scale: state.photo ? null : logicalWidth() / Math.round(logicalWidth() * SEND_SCALE),
    };
    setStatus("number-status", "");
    closeRetype(false);
  }
  renderReading();
  announce(`${$("verdict").textContent}. ${$("confidence").textContent}`);
}

const unanswered = (d) => d.uncertain && d.chosen === null && !d.deleted;  // uncertain, not answered
const shownAs = (d) => (d.chosen !== null ? d.chosen : d.inserted ? "?" : unanswered(d) ? "?" : d.digit);
const isFixed = (d) => !d.inserted && !d.deleted && d.chosen !== null && d.chosen !== d.digit;
const kept = (reading) => reading.digits.filter((d) => !d.deleted && !(d.inserted && d.chosen === null));

// The edits that turn the digits read into the number the person says (POST /feedback/reading):
// indices are positions among the digits read; an insert goes before the digit at its index.
function edits(reading) {
  if (reading.typed !== null) return [{ kind: "retype", to: reading.typed }];
  const out = [];
  let index = 0;
  for (const d of reading.digits) {
    if (d.inserted) {
      if (d.chosen !== null) out.push({ kind: "insert", index, to: String(d.chosen) });
      continue;
    }
    if (d.deleted) out.push({ kind: "delete", index });
    else if (isFixed(d)) out.push({ kind: "change", index, to: String(d.chosen) });
    index++;
  }
  return out;
}

function renderReading() {
  const reading = state.reading;
  const { digits } = reading;
  const text = reading.typed ?? kept(reading).map(shownAs).join("");
  const read = digits.filter((d) => !d.inserted);
  const guess = read.map((d) => d.digit ?? "?").join("");
  const confirmable = read.every((d) => d.digit !== null);
  const asking = digits.filter(unanswered).length;
  const changes = edits(reading);
  const confirmed = digits.some((d) => d.chosen !== null);
  if (reading.typed !== null) {
    setAnswer(text, "number fixed", "typed");
    $("verdict").textContent = `You typed it: ${text}`;
    $("confidence").textContent = `It read ${guess}.`;
  } else if (asking) {
    setAnswer(text, "number unsure", "not sure");
    $("verdict").textContent = `Not sure: is it ${guess}?`;
    $("confidence").textContent = `Tap ${asking === 1 ? "the ?" : "each ?"} to choose the digit you wrote, or confirm.`;
  } else if (changes.length) {
    setAnswer(text, "number fixed", "fixed");
    $("verdict").textContent = `You fixed it: ${text}`;
    const parts = [];
    const count = (kind, one, many) => {
      const n = changes.filter((c) => c.kind === kind).length;
      if (n) parts.push(n === 1 ? one : `${n} ${many}`);
    };
    count("change", "one digit corrected", "digits corrected");
    count("delete", "one removed", "removed");
    count("insert", "one added", "added");
    $("confidence").textContent = `It read ${guess}; ${parts.join(", ")}.`;
  } else if (confirmed) {
    setAnswer(text, "number", "confirmed");
    $("verdict").textContent = `You confirmed it: ${text}`;
    $("confidence").textContent = "Thank you for checking.";
  } else {
    setAnswer(text, "number", pct(reading.confidence));
    $("verdict").textContent = `It reads ${text}`;
    $("confidence").textContent = `${pct(reading.confidence)} sure`;
  }
  $("top3").replaceChildren();

  $("number-fix").hidden = false;
  $("fix-label").textContent = asking ? "Choose the digits marked ?" : "Wrong? Tap a digit to fix it";
  $("read-digits").replaceChildren(...digits.map((d, i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = `read-digit${unanswered(d) ? " unsure" : ""}${isFixed(d) || (d.inserted && d.chosen !== null) ? " fixed" : ""}${d.deleted ? " deleted" : ""}`;
    b.dataset.index = String(i);
    b.disabled = reading.typed !== null;
    b.setAttribute("aria-expanded", String(reading.selected === i));
    b.setAttribute("aria-controls", "fix-picker");
    const cands = d.candidates.filter(worthShowing);
    const shown = d.candidates.length || d.digit === null ? cands : [{ digit: d.digit, probability: d.confidence }];
    // The visible digit and note, with words around them for screen readers (the name a
    // button gets from its text contains what it shows, as WCAG 2.5.3 asks).
    let note, after;
    if (d.deleted) { note = "removed"; after = `, read as ${d.digit}. Put it back or change it`; }
    else if (d.inserted) { note = d.chosen === null ? "new" : "added"; after = ". Change it"; }
    else if (unanswered(d)) {
      note = shown.length ? `${shown.map((c) => c.digit).join(" or ")}?` : "not sure";
      after = `: not sure${shown.length ? `, maybe ${shown.map((c) => `${c.digit} (${pct(c.probability)})`).join(", ")}` : ""}. Choose it`;
    } else if (isFixed(d)) { note = `not ${d.digit}`; after = ", corrected. Change it"; }
    else if (d.chosen !== null) { note = "✓"; after = " confirmed. Change it"; }
    else { note = pct(d.confidence); after = " sure. Change it"; }
    b.innerHTML = `<span class="visually-hidden">Digit ${i + 1} of ${digits.length}: </span>`
      + `<span class="rd-digit"></span> <span class="rd-note"></span>`
      + `<span class="visually-hidden"></span>`;
    b.lastChild.textContent = after;
    b.querySelector(".rd-digit").textContent = String(shownAs(d));
    b.querySelector(".rd-note").textContent = note;
    b.addEventListener("click", () => (reading.selected === i ? closePicker() : openPicker(i)));
    return b;
  }));

  const picking = reading.selected !== null;
  $("fix-picker").hidden = !picking;
  if (picking) {
    const d = digits[reading.selected];
    const likely = new Set(d.candidates.filter(worthShowing).map((c) => c.digit));
    $("picker-label").textContent = d.inserted ? `The new digit ${reading.selected + 1} is a…` : `Digit ${reading.selected + 1} was a…`;
    for (let k = 0; k < 10; k++) {
      const b = $(`fix-${k}`);
      b.classList.toggle("likely", likely.has(k));
      b.classList.toggle("chosen", shownAs(d) === k);
      b.setAttribute("aria-pressed", String(shownAs(d) === k));
      b.querySelector(".likely-note").textContent = likely.has(k) ? "likely" : "";
    }
    $("fix-delete").textContent = d.deleted ? "Keep it" : d.inserted ? "Don't add" : "Not a digit: remove";
  }
  $("confirm-number").hidden = !asking || !confirmable || reading.typed !== null;
  $("confirm-number").textContent = `Yes, it's ${guess}`;
  $("retype-open").hidden = !$("retype-form").hidden;
  drawBoxes(digits, reading.selected);
}

// The picker for digit i: its focus on the digit shown (else the likeliest, else 0).
function openPicker(i) {
  const reading = state.reading;
  if (!reading) return;
  reading.selected = i;
  renderReading();
  const d = reading.digits[i];
  const current = shownAs(d);
  const focus = typeof current === "number" ? current : d.candidates.length ? d.candidates[0].digit : 0;
  $(`fix-${focus}`).focus();
}

// Closing the picker puts the focus back on the digit it was for.
function closePicker() {
  const reading = state.reading;
  if (!reading || reading.selected === null) return;
  let i = reading.selected;
  reading.selected = null;
  if (reading.digits[i].inserted && reading.digits[i].chosen === null) {  // nothing added after all
    reading.digits.splice(i, 1);
    i = Math.max(0, i - 1);
  }
  renderReading();
  const chip = $("read-digits").children[i];
  if (chip) chip.focus();
}

for (let k = 0; k < 10; k++) {
  const b = $(`fix-${k}`);
  const note = document.createElement("span");
  note.className = "likely-note";
  b.append(note);
  b.addEventListener("click", () => {
    const reading = state.reading;
    if (!reading || reading.selected === null) return;
    const i = reading.selected;
    const d = reading.digits[i];
    d.chosen = k;
    d.deleted = false;
    reading.selected = null;
    renderReading();
    $("read-digits").children[i].focus();
    saveFixes(reading);
  });
}

// "Not a digit: remove" (or "Keep it" for a digit removed, "Don't add" for one being added).
$("fix-delete").addEventListener("click", () => {
  const reading = state.reading;
  if (!reading || reading.selected === null) return;
  const i = reading.selected;
  const d = reading.digits[i];
  if (d.inserted) { closePicker(); saveFixes(reading); return; }
  d.deleted = !d.deleted;
  if (!d.deleted) d.chosen = null;
  reading.selected = null;
  renderReading();
  $("read-digits").children[i].focus();
  saveFixes(reading);
});

// "Add a digit before / after": a new digit next to this one, whose picker opens at once.
for (const [id, after] of [["fix-insert-before", 0], ["fix-insert-after", 1]]) {
  $(id).addEventListener("click", () => {
    const reading = state.reading;
    if (!reading || reading.selected === null) return;
    const at = reading.selected + after;
    reading.digits.splice(at, 0, {
      digit: null, confidence: 0, box: null, candidates: [], uncertain: false,
      chosen: null, saved: null, deleted: false, inserted: true,
    });
    reading.selected = null;
    openPicker(at);
  });
}

$("confirm-number").addEventListener("click", () => {
  const reading = state.reading;
  if (!reading) return;
  for (const d of reading.digits) if (unanswered(d)) d.chosen = d.digit;
  reading.selected = null;
  renderReading();
  $("read-digits").children[0].focus();
  saveFixes(reading);
});

// ---- typing the whole number

$("retype-open").addEventListener("click", () => {
  const reading = state.reading;
  if (!reading) return;
  closePicker();
  $("retype-form").hidden = false;
  $("retype-open").hidden = true;
  $("retype").value = reading.typed ?? kept(reading).map(shownAs).filter((c) => c !== "?").join("");
  $("retype").focus();
  $("retype").select();
});

function closeRetype(focus = true) {
  $("retype-form").hidden = true;
  $("retype-open").hidden = false;
  $("retype-error").textContent = "";
  if (focus) $("retype-open").focus();
}
$("retype-cancel").addEventListener("click", () => closeRetype());

$("retype-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const reading = state.reading;
  if (!reading) return;
  const typed = $("retype").value.replace(/\s+/g, "");
  if (!/^[0-9]{1,64}$/.test(typed)) {
    $("retype-error").textContent = "Please type the number with the digits 0 to 9 only.";
    $("retype").focus();
    return;
  }
  reading.typed = typed;
  closeRetype(false);
  renderReading();
  $("retype-open").focus();
  saveFixes(reading);
});

// What the person told us, saved: one feedback per digit fixed or confirmed (the digit cut out
// of the image read), then the number as a whole with its boxes and the edits
// (POST /api/v1/feedback/reading), so that a split or a merge is kept as well.
async function saveFixes(reading) {
  const todo = reading.typed !== null ? [] : reading.digits.filter((d) => !d.inserted && !d.deleted
    && d.chosen !== null && d.chosen !== d.saved && (isFixed(d) || d.uncertain || d.saved !== null));
  const changes = edits(reading);
  const text = reading.typed ?? kept(reading).map(shownAs).join("");
  const read = reading.digits.filter((d) => !d.inserted);
  const whole = changes.length && read.every((d) => d.digit !== null) && /^[0-9]+$/.test(text)
    && JSON.stringify(changes) !== reading.savedChanges;
  if (!todo.length && !whole) return;
  const report = (message, problem) => { if (state.reading === reading) setStatus("number-status", message, problem); };
  report("Saving…");
  for (const d of todo) {
    const label = d.chosen, before = d.saved;
    d.saved = label;  // now, so that a second fix made meanwhile does not send this one again
    let answer;
    try {
      const image = await cropDigit(reading, d);
      // An uncertain digit had no answer from the model, as in digit mode.
      answer = await post("/api/v1/feedback", { image, label, predicted: d.uncertain ? null : d.digit });
    } catch (e) {
      answer = { ok: false, problem: e instanceof CropError ? e.message : "Not saved: cannot reach the server. Please try again." };
    }
    if (!answer.ok) {
      d.saved = before;  // choosing the digit again retries
      report(answer.problem || notSaved(answer), true);
      return;
    }
  }
  if (whole) {
    const savedBefore = reading.savedChanges;
    reading.savedChanges = JSON.stringify(changes);
    let answer;
    try {
      answer = await post("/api/v1/feedback/reading", {
        image: reading.image, read: read.map((d) => d.digit).join(""), boxes: read.map((d) => d.box),
        text, changes, drawing: reading.id,
      });
    } catch {
      answer = { ok: false, problem: "Not saved: cannot reach the server. Please try again." };
    }
    if (!answer.ok) {
      reading.savedChanges = savedBefore;
      report(answer.problem || notSaved(answer), true);
      return;
    }
  }
  report(`Thanks! Saved ${text}${todo.length && !whole ? ` (${todo.length === 1 ? "one digit" : `${todo.length} digits`})` : ""}.`);
}

class CropError extends Error {}

// The digit's box cut out of the image that was read (its pixels are the box's). A drawing is
// strokes on a transparent background: the box goes on a transparent margin. A photo keeps a
// margin of its own paper, short of the neighbouring digits' boxes.
async function cropDigit(reading, d) {
  if (!reading.source) {
    const img = new Image();
    img.src = reading.image;
    reading.source = img.decode().then(() => img);
  }
  let img;
  try { img = await reading.source; } catch {
    throw new CropError("Not saved: this browser cannot cut a digit out of this image.");
  }
  const [x, y, w, h] = d.box;
  const pad = Math.round(Math.max(w, h) * 0.2);
  const out = document.createElement("canvas");
  const boxes = reading.digits.filter((o) => o.box);
  if (reading.drawing) {
    out.width = w + 2 * pad;
    out.height = h + 2 * pad;
    out.getContext("2d").drawImage(img, x, y, w, h, pad, pad, w, h);
  } else {
    const left = Math.max(0, x - pad, ...boxes.filter((o) => o.box[0] + o.box[2] <= x).map((o) => o.box[0] + o.box[2]));
    const right = Math.min(img.naturalWidth, x + w + pad, ...boxes.filter((o) => o.box[0] >= x + w).map((o) => o.box[0]));
    const top = Math.max(0, y - pad), bottom = Math.min(img.naturalHeight, y + h + pad);
    out.width = right - left;
    out.height = bottom - top;
    out.getContext("2d").drawImage(img, left, top, out.width, out.height, 0, 0, out.width, out.height);
  }
  return out.toDataURL("image/png");
}

function drawBoxes(digits = [], selected = null) {
  octx.clearRect(0, 0, logicalWidth(), HEIGHT);
  // Boxes come in the sent image's pixels: the drawing as sent (SEND_SCALE), or the photo.
  const reading = state.reading;
  const fit = state.photo ? state.photo.fit : { x: 0, y: 0, s: reading && reading.scale ? reading.scale : 1 / SEND_SCALE };
  octx.font = "bold 16px system-ui, sans-serif";
  digits.forEach((d, i) => {
    if (!d.box) return;  // a digit added by the person
    const [x, y, w, h] = d.box;
    const bx = fit.x + x * fit.s, by = fit.y + y * fit.s;
    const colour = i === selected ? "#1f5fbf" : d.deleted ? "#6b7280" : isFixed(d) ? "#1e6b35" : "#d9480f";
    const label = d.deleted ? "✕" : String(shownAs(d));
    octx.lineWidth = i === selected ? 4 : 2;
    octx.setLineDash(d.deleted ? [6, 4] : []);
    octx.strokeStyle = colour;
    octx.strokeRect(bx, by, w * fit.s, h * fit.s);
    octx.setLineDash([]);
    octx.fillStyle = colour;
    octx.fillRect(bx, Math.max(0, by - 20), 18, 20);
    octx.fillStyle = "#fff";
    octx.fillText(label, bx + 4, Math.max(15, by - 5));
  });
}

// A refused image (not an image, too large) or an unreachable server: said in words, and the
// answer says there is nothing read.
function showError(message) {
  setShown("error");
  $("error").textContent = message;
  setAnswer("✕", "not-digit", "cannot read");
  $("verdict").textContent = "Cannot read this";
  $("confidence").textContent = "";
  $("top3").replaceChildren();
  $("number-fix").hidden = true;
  state.reading = null;
  state.sent = null;
  enableCorrection(false);
  octx.clearRect(0, 0, logicalWidth(), HEIGHT);
}

// ---------------------------------------------------------------- corrections

for (let d = 0; d < 10; d++) {
  $(`correct-${d}`).addEventListener("click", async () => {
    if (!state.sent) return;
    const button = $(`correct-${d}`);
    setStatus("feedback-status", "Saving…");
    try {
      const answer = await post("/api/v1/feedback", { image: state.sent.image, label: d, predicted: state.sent.predicted });
      if (!answer.ok) { setStatus("feedback-status", notSaved(answer), true); return; }
      for (let k = 0; k < 10; k++) $(`correct-${k}`).classList.toggle("chosen", k === d);
      setStatus("feedback-status", `Thanks! Saved as a ${d}.`);
      button.focus();
    } catch {
      setStatus("feedback-status", "Not saved: cannot reach the server. Please try again.", true);
    }
  });
}

// ---------------------------------------------------------------- answers on the device (ondevice.js)
// A drawing in digit mode is answered in the browser once the model has loaded there (as the
// server would be asked: live while drawing, at once on pointer-up); a number, a photo,
// or a browser that cannot, goes to the server. The footer says which answered. sw.js keeps
// the page, the runtime and the model for offline use.
const answeredBy = document.createElement("span");
answeredBy.id = "answered-by";
$("model-name").after(answeredBy);
function setAnsweredBy(side) {
  answeredBy.textContent = side ? ` · answered ${side === "device" ? "on this device" : "by the server"}` : "";
}
state.device = null;
import("/static/ondevice.js")
  .then((m) => m.load().then((device) => { state.device = device; state.deviceModule = m; }))
  .catch(() => {})
  .finally(() => { document.documentElement.dataset.device = state.device ? "ready" : "off"; });
// The answer to the drawing as it is, from the model in the browser; null where it cannot.
async function answerOnDevice() {
  if (!state.device || state.mode !== "digit" || state.photo || !state.strokes.length) return null;
  // Only the strokes' box is read from the canvas (their half width and two pixels of
  // anti-aliasing around their points), in canvas pixels.
  const scale = canvas.width / logicalWidth();
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const { size, points } of state.strokes) {
    for (const [x, y] of points) {
      x0 = Math.min(x0, x - size / 2 - 2); x1 = Math.max(x1, x + size / 2 + 2);
      y0 = Math.min(y0, y - size / 2 - 2); y1 = Math.max(y1, y + size / 2 + 2);
    }
  }
  const box = { x: x0 * scale, y: y0 * scale, w: (x1 - x0) * scale, h: (y1 - y0) * scale };
  const a = await state.device.predict(canvas, box).catch(() => null);
  return a && { ...a, preprocessed: state.deviceModule.dataUrl(a.image28) };
}
if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(() => {});

// ---------------------------------------------------------------- start

buildBars();
window.addEventListener("resize", () => {
  // Only the devicePixelRatio matters (zoom, moving to another screen); CSS scales the rest.
  if (Math.round(canvas.width / logicalWidth() * 100) !== Math.round(Math.min(window.devicePixelRatio || 1, 3) * 100)) resize();
});
// The peek shows the answer while the answer itself is not wholly on screen.
new IntersectionObserver(([entry]) => {
  state.answerInView = entry.intersectionRatio >= 0.98;
  updatePeek();
}, { threshold: [0, 0.5, 0.98, 1] }).observe($("answer"));
resize();
showIdle();
fetch("/healthz").then((r) => r.json()).then((h) => { $("model-name").textContent = `model: ${h.model}`; }).catch(() => {});
fetch("/api/v1/model").then((r) => r.json()).then((card) => {
  if (typeof card.uncertain_below === "number") state.uncertainBelow = card.uncertain_below;
}).catch(() => {});

