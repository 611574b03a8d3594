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
  else if (e.key === "Escape") clearAll();
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
  return { ok: res.ok, data };
}

async function run() {
  const image = currentImage();
  const seq = ++state.seq;
  if (!image) { showIdle(); return; }
  const number = state.mode === "number";
  state.inflight++;
  setBusy();
  try {
    const { ok, data } = await post(number ? "/api/v1/read" : "/api/v1/predict", { image });
    if (seq !== state.seq) return;  // a newer drawing is on its way
    if (!ok) { showError(data.error || "something went wrong"); return; }
    $("error").textContent = "";
    if (number) showReading(data); else showPrediction(data, image);
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

function setAnswer(text, kind) {
  const answer = $("answer");
  answer.textContent = text;
  answer.className = `answer ${kind}`;
}

function enableCorrection(on) {
  for (let d = 0; d < 10; d++) {
    $(`correct-${d}`).disabled = !on;
    $(`correct-${d}`).classList.remove("chosen");
  }
  $("feedback-status").textContent = "";
}

function showIdle() {
  setAnswer("?", "empty");
  $("verdict").textContent = state.mode === "number" ? "Write a number to start" : "Draw a digit to start";
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
  const candidates = p.candidates && p.candidates.length
    ? p.candidates
    : p.probabilities.map((q, d) => ({ digit: d, probability: q })).sort((a, b) => b.probability - a.probability).slice(0, 3);
  if (p.digit !== null) {
    setAnswer(String(p.digit), "digit");
    $("verdict").textContent = `It's a ${p.digit}`;
    $("confidence").textContent = `${pct(p.confidence)} sure`;
  } else if (p.reason === "empty") {
    setAnswer("?", "empty");
    $("verdict").textContent = "Nothing to read: no ink found";
    $("confidence").textContent = "";
  } else {
    setAnswer("✕", "not-digit");
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

function showReading(r) {
  setAnswer(r.text || "?", r.text ? "number" : "empty");
  $("verdict").textContent = r.text ? `It reads ${r.text}` : "No digits found";
  $("confidence").textContent = r.digits.length
    ? r.digits.map((d) => `${d.digit}: ${pct(d.confidence)}`).join(" · ") : "";
  $("top3").replaceChildren();
  drawBoxes(r.digits);
}

function drawBoxes(digits) {
  octx.clearRect(0, 0, logicalWidth(), HEIGHT);
  // Boxes come in the sent image's pixels: the canvas (x devicePixelRatio) or the photo.
  const fit = state.photo ? state.photo.fit : { x: 0, y: 0, s: logicalWidth() / canvas.width };
  octx.lineWidth = 2;
  octx.font = "bold 16px system-ui, sans-serif";
  for (const d of digits) {
    const [x, y, w, h] = d.box;
    const bx = fit.x + x * fit.s, by = fit.y + y * fit.s;
    octx.strokeStyle = "#d9480f";
    octx.strokeRect(bx, by, w * fit.s, h * fit.s);
    octx.fillStyle = "#d9480f";
    octx.fillRect(bx, Math.max(0, by - 20), 18, 20);
    octx.fillStyle = "#fff";
    octx.fillText(String(d.digit), bx + 4, Math.max(15, by - 5));
  }
}

function showError(message) {
  $("error").textContent = message;
}

// ---------------------------------------------------------------- corrections

for (let d = 0; d < 10; d++) {
  $(`correct-${d}`).addEventListener("click", async () => {
    if (!state.sent) return;
    const button = $(`correct-${d}`);
    const status = $("feedback-status");
    status.textContent = "Saving…";
    try {
      const { ok, data } = await post("/api/v1/feedback", { image: state.sent.image, label: d, predicted: state.sent.predicted });
      if (!ok) { status.textContent = `Not saved: ${data.error}`; return; }
      for (let k = 0; k < 10; k++) $(`correct-${k}`).classList.toggle("chosen", k === d);
      status.textContent = `Thanks! Saved as a ${d}.`;
      button.focus();
    } catch {
      status.textContent = "Not saved: cannot reach the server.";
    }
  });
}

// ---------------------------------------------------------------- start

buildBars();
window.addEventListener("resize", () => {
  // Only the devicePixelRatio matters (zoom, moving to another screen); CSS scales the rest.
  if (Math.round(canvas.width / logicalWidth() * 100) !== Math.round(Math.min(window.devicePixelRatio || 1, 3) * 100)) resize();
});
resize();
showIdle();
fetch("/healthz").then((r) => r.json()).then((h) => { $("model-name").textContent = `model: ${h.model}`; }).catch(() => {});
