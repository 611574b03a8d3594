// digitrec page: draw (Pointer Events: mouse, touch, pen) or show a photo; the server answers.
// No framework, no network beyond this server. Coordinates are "logical" canvas pixels
// (280 x 280, or 560 x 280 in number mode); the backing store is scaled by devicePixelRatio.
"use strict";

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const overlay = $("overlay");
const ctx = canvas.getContext("2d");
const octx = overlay.getContext("2d");
const stage = $("stage");

const HEIGHT = 280;
const WIDTH = { digit: 280, number: 560 };
const DEBOUNCE_MS = 150;          // live prediction while drawing: at most one request per 150 ms
const PHOTO_MAX_SIDE = 1024;      // photos are downscaled before upload (phone photos are ~12 MP)
const INK = "#111";

const state = {
  mode: "digit",
  strokes: [],        // [{size, points: [[x, y], ...]}] in logical pixels
  drawing: null,      // the stroke under the pointer
  pointerId: null,
  photo: null,        // {bitmap, dataUrl, file, w, h, fit: {x, y, s}}
  sent: null,         // {image, predicted}: what the correction buttons refer to
  reading: null,      // number mode: {image, digits: [{digit, confidence, box, candidates, uncertain,
                      //   chosen, saved}], selected}: the number read and the person's fixes
  answerInView: true, // is #answer wholly on screen? If not, the peek by the mode switch shows it
  uncertainBelow: 0.5, // a read digit under this confidence is uncertain (the model card's figure)
  seq: 0,             // answers to older requests are dropped
  timer: null,
  inflight: 0,
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
  for (const stroke of state.strokes) drawStroke(stroke);
  octx.clearRect(0, 0, logicalWidth(), HEIGHT);
  const empty = !state.strokes.length && !state.photo;
  $("hint").hidden = !empty;
  $("undo").disabled = !state.strokes.length;
  $("clear").disabled = empty;
}

function drawStroke(stroke) {
  const pts = stroke.points;
  ctx.strokeStyle = INK;
  ctx.fillStyle = INK;
  ctx.lineWidth = stroke.size;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  if (pts.length === 1) {
    ctx.beginPath();
    ctx.arc(pts[0][0], pts[0][1], stroke.size / 2, 0, Math.PI * 2);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(pts[0][0], pts[0][1]);
  for (let i = 1; i < pts.length; i++) ctx.lineTo(pts[i][0], pts[i][1]);
  ctx.stroke();
}

// ---------------------------------------------------------------- drawing

function toLogical(e) {
  const r = canvas.getBoundingClientRect();
  return [(e.clientX - r.left) * logicalWidth() / r.width, (e.clientY - r.top) * HEIGHT / r.height];
}

canvas.addEventListener("pointerdown", (e) => {
  if (state.pointerId !== null || (e.pointerType === "mouse" && e.button !== 0)) return;
  e.preventDefault();
  canvas.setPointerCapture(e.pointerId);
  if (state.photo) { state.photo = null; state.strokes = []; }  // drawing starts a new digit
  state.pointerId = e.pointerId;
  state.drawing = { size: Number($("brush").value), points: [toLogical(e)] };
  state.strokes.push(state.drawing);
  redraw();
  schedule();
});

canvas.addEventListener("pointermove", (e) => {
  if (e.pointerId !== state.pointerId || !state.drawing) return;
  e.preventDefault();
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
  for (const ev of events.length ? events : [e]) state.drawing.points.push(toLogical(ev));
  redraw();
  schedule();
});

function endStroke(e) {
  if (e.pointerId !== state.pointerId) return;
  state.pointerId = null;
  state.drawing = null;
  schedule();
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

function schedule() {
  if (state.timer === null) state.timer = setTimeout(() => { state.timer = null; run(); }, DEBOUNCE_MS);
  setBusy();
}

// aria-busy on the result while an answer is on its way (screen readers wait; so can tests).
function setBusy() {
  $("result").setAttribute("aria-busy", String(state.timer !== null || state.inflight > 0));
}

$("undo").addEventListener("click", () => { state.strokes.pop(); redraw(); run(); });
$("clear").addEventListener("click", clearAll);
$("brush").addEventListener("input", (e) => e.target.setAttribute("aria-valuetext", `${e.target.value} pixels`));

function clearAll() {
  state.strokes = [];
  state.photo = null;
  state.seq++;  // drop answers still on their way
  redraw();
  showIdle();
}

document.addEventListener("keydown", (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") { e.preventDefault(); $("undo").click(); }
  else if (e.key === "Escape") {
    if (state.reading && state.reading.selected !== null) selectDigit(null);  // close the digit picker first
    else clearAll();
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
  state.strokes = [];
  state.photo = { bitmap, dataUrl, w: bitmap ? bitmap.width : 1, h: bitmap ? bitmap.height : 1 };
  redraw();
  run();
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
  resize();
  run();
}
$("mode-digit").addEventListener("click", () => setMode("digit"));
$("mode-number").addEventListener("click", () => setMode("number"));

// ---------------------------------------------------------------- asking the server

function currentImage() {
  if (state.photo) return state.photo.dataUrl;
  return state.strokes.length ? canvas.toDataURL("image/png") : null;
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

async function run() {
  const image = currentImage();
  const seq = ++state.seq;
  if (!image) { showIdle(); return; }
  const number = state.mode === "number";
  state.inflight++;
  setBusy();
  try {
    if (!number && await answerOnDevice(seq, image)) return;  // the end of this file
    const { ok, data } = await post(number ? "/api/v1/read" : "/api/v1/predict", { image });
    if (seq !== state.seq) return;  // a newer drawing is on its way
    if (!ok) { showError(data.error || "something went wrong"); return; }
    $("error").textContent = "";
    if (number) showReading(data, image); else showPrediction(data, image);
    setAnsweredBy("server");
  } catch {
    if (seq === state.seq) showError("Cannot reach the server.");
  } finally {
    state.inflight--;
    setBusy();
  }
}

// ---------------------------------------------------------------- showing answers

const pct = (p) => `${(p * 100).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1)}%`;

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
}

function showPrediction(p, image) {
  const candidates = p.candidates;  // the top three, always sent (predictor._top3)
  if (p.digit !== null) {
    setAnswer(String(p.digit), "digit", pct(p.confidence));
    $("verdict").textContent = `It's a ${p.digit}`;
    $("confidence").textContent = `${pct(p.confidence)} sure`;
  } else if (p.reason === "empty") {
    setAnswer("?", "empty");
    $("verdict").textContent = "Nothing to read: no ink found";
    $("confidence").textContent = "";
  } else {
    setAnswer("✕", "not-digit", "not a digit");
    $("verdict").textContent = "Not a digit, as far as I can tell";
    $("confidence").textContent = `Best guess ${candidates[0].digit}, only ${pct(p.confidence)} sure`;
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
    // (a late reply) keeps a correction already made.
    state.sent = { image, predicted: p.digit };
    enableCorrection(true);
  }
}

// ---------------------------------------------------------------- number mode: the digits read, and fixing them

// A read digit's top guesses as [{digit, probability}] (the API may give `probability` or `confidence`).
function candidatesOf(d) {
  return (d.candidates || []).map((c) => ({ digit: c.digit, probability: c.probability ?? c.confidence ?? 0 }));
}

function showReading(r, image) {
  if (!r.digits.length) {
    state.reading = null;
    $("number-fix").hidden = true;
    setAnswer("?", "empty");
    $("verdict").textContent = "No digits found";
    $("confidence").textContent = "";
    $("top3").replaceChildren();
    drawBoxes();
    return;
  }
  // The same image answered again (a late reply, a mode switched back) keeps the fixes made.
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
      chosen: null,   // what the person says it is
      saved: null,    // the label the server has stored for it
    }));
    // The number is uncertain as a whole though each digit passes: ask about its weakest digit.
    if (unsure && !digits.some((d) => d.uncertain)) {
      digits.reduce((a, b) => (b.confidence < a.confidence ? b : a)).uncertain = true;
    }
    const confidence = r.confidence ?? digits.reduce((p, d) => p * d.confidence, 1);  // of the whole number
    state.reading = { image, drawing: !state.photo, digits, selected: null, confidence };
    setStatus("number-status", "");
  }
  renderReading();
}

const unanswered = (d) => d.uncertain && d.chosen === null;           // uncertain and not yet answered
const shownAs = (d) => (d.chosen !== null ? d.chosen : unanswered(d) ? "?" : d.digit);
const isFixed = (d) => d.chosen !== null && d.chosen !== d.digit;

function renderReading() {
  const reading = state.reading;
  const { digits } = reading;
  const text = digits.map(shownAs).join("");
  const guess = digits.map((d) => d.digit ?? "?").join("");
  const confirmable = digits.every((d) => d.digit !== null);
  const asking = digits.filter(unanswered).length;
  const nfixed = digits.filter(isFixed).length;
  const confirmed = digits.some((d) => d.chosen !== null);
  if (asking) {
    setAnswer(text, "number unsure", "unsure");
    $("verdict").textContent = `Not sure: is it ${guess}?`;
    $("confidence").textContent = `Tap ${asking === 1 ? "the ?" : "each ?"} to choose the digit you wrote, or confirm.`;
  } else if (nfixed) {
    setAnswer(text, "number fixed", "fixed");
    $("verdict").textContent = `You fixed it: ${text}`;
    $("confidence").textContent = `It read ${guess}; ${nfixed === 1 ? "one digit" : `${nfixed} digits`} corrected.`;
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
    b.className = `read-digit${unanswered(d) ? " unsure" : ""}${isFixed(d) ? " fixed" : ""}`;
    b.dataset.index = String(i);
    b.setAttribute("aria-expanded", String(reading.selected === i));
    b.setAttribute("aria-controls", "fix-picker");
    const big = document.createElement("span");
    big.className = "rd-digit";
    big.textContent = String(shownAs(d));
    const note = document.createElement("span");
    note.className = "rd-note";
    const cands = d.candidates.length || d.digit === null ? d.candidates : [{ digit: d.digit, probability: d.confidence }];
    if (unanswered(d)) note.textContent = cands.length ? `${cands.map((c) => c.digit).join(" or ")}?` : "unsure";
    else if (isFixed(d)) note.textContent = `not ${d.digit}`;
    else note.textContent = d.chosen !== null ? "✓" : pct(d.confidence);
    b.append(big, note);
    const maybe = cands.map((c) => `${c.digit} (${pct(c.probability)})`).join(", ");
    const about = unanswered(d) ? `not sure${maybe ? `, maybe ${maybe}` : ""}`
      : isFixed(d) ? `${d.chosen}, corrected from ${d.digit}` : `${shownAs(d)}, ${pct(d.confidence)} sure`;
    b.setAttribute("aria-label", `Digit ${i + 1} of ${digits.length}: ${about}. Change it`);
    b.addEventListener("click", () => selectDigit(reading.selected === i ? null : i));
    return b;
  }));

  const picking = reading.selected !== null;
  $("fix-picker").hidden = !picking;
  if (picking) {
    const d = digits[reading.selected];
    const likely = new Set(d.candidates.map((c) => c.digit));
    $("picker-label").textContent = `Digit ${reading.selected + 1} was a…`;
    for (let k = 0; k < 10; k++) {
      const b = $(`fix-${k}`);
      b.classList.toggle("likely", likely.has(k));
      b.classList.toggle("chosen", shownAs(d) === k);
      b.setAttribute("aria-label", likely.has(k) ? `${k}, likely` : String(k));
    }
  }
  $("confirm-number").hidden = !asking || !confirmable;
  $("confirm-number").textContent = `Yes, it's ${guess}`;
  drawBoxes(digits, reading.selected);
}

function selectDigit(i) {
  if (!state.reading) return;
  state.reading.selected = i;
  renderReading();
  if (i !== null) $("fix-0").focus();
}

for (let k = 0; k < 10; k++) {
  $(`fix-${k}`).addEventListener("click", () => {
    const reading = state.reading;
    if (!reading || reading.selected === null) return;
    const i = reading.selected;
    reading.digits[i].chosen = k;
    reading.selected = null;
    renderReading();
    $("read-digits").children[i].focus();
    saveFixes(reading);
  });
}

$("confirm-number").addEventListener("click", () => {
  const reading = state.reading;
  if (!reading) return;
  for (const d of reading.digits) if (unanswered(d)) d.chosen = d.digit;
  reading.selected = null;
  renderReading();
  saveFixes(reading);
});

// One feedback per digit the person fixed or confirmed, with the digit cut out of the image read.
async function saveFixes(reading) {
  const todo = reading.digits.filter((d) => d.chosen !== null && d.chosen !== d.saved && (isFixed(d) || d.uncertain || d.saved !== null));
  if (!todo.length) return;
  const report = (text, problem) => { if (state.reading === reading) setStatus("number-status", text, problem); };
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
  const text = reading.digits.map(shownAs).join("");
  report(`Thanks! Saved ${text} (${todo.length === 1 ? "one digit" : `${todo.length} digits`}).`);
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
  if (reading.drawing) {
    out.width = w + 2 * pad;
    out.height = h + 2 * pad;
    out.getContext("2d").drawImage(img, x, y, w, h, pad, pad, w, h);
  } else {
    const left = Math.max(0, x - pad, ...reading.digits.filter((o) => o.box[0] + o.box[2] <= x).map((o) => o.box[0] + o.box[2]));
    const right = Math.min(img.naturalWidth, x + w + pad, ...reading.digits.filter((o) => o.box[0] >= x + w).map((o) => o.box[0]));
    const top = Math.max(0, y - pad), bottom = Math.min(img.naturalHeight, y + h + pad);
    out.width = right - left;
    out.height = bottom - top;
    out.getContext("2d").drawImage(img, left, top, out.width, out.height, 0, 0, out.width, out.height);
  }
  return out.toDataURL("image/png");
}

function drawBoxes(digits = [], selected = null) {
  octx.clearRect(0, 0, logicalWidth(), HEIGHT);
  // Boxes come in the sent image's pixels: the canvas (x devicePixelRatio) or the photo.
  const fit = state.photo ? state.photo.fit : { x: 0, y: 0, s: logicalWidth() / canvas.width };
  octx.font = "bold 16px system-ui, sans-serif";
  digits.forEach((d, i) => {
    const [x, y, w, h] = d.box;
    const bx = fit.x + x * fit.s, by = fit.y + y * fit.s;
    const colour = i === selected ? "#1f5fbf" : isFixed(d) ? "#1e6b35" : "#d9480f";
    const label = String(shownAs(d));
    octx.lineWidth = i === selected ? 4 : 2;
    octx.strokeStyle = colour;
    octx.strokeRect(bx, by, w * fit.s, h * fit.s);
    octx.fillStyle = colour;
    octx.fillRect(bx, Math.max(0, by - 20), 18, 20);
    octx.fillStyle = "#fff";
    octx.fillText(label, bx + 4, Math.max(15, by - 5));
  });
}

function showError(message) {
  $("error").textContent = message;
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

// ---------------------------------------------------------------- answers on the device (ondevice.js)
// A drawing in digit mode is answered in the browser once the model has loaded there (at once
// on pointer-up, and while drawing as often as the server would be asked); a number, a photo,
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
async function answerOnDevice(seq, image) {
  if (!state.device || state.mode !== "digit" || state.photo || !state.strokes.length) return false;
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
  if (!a) return false;
  if (seq === state.seq) {
    $("error").textContent = "";
    showPrediction({ ...a, preprocessed: state.deviceModule.dataUrl(a.image28) }, image);
    setAnsweredBy("device");
  }
  return true;
}
canvas.addEventListener("pointerup", () => {
  if (!state.device || state.mode !== "digit") return;
  clearTimeout(state.timer);  // no wait on the device: answer now
  state.timer = null;
  run();
});
if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(() => {});
