// The model on the device: ONNX Runtime Web (WebAssembly, vendor/onnxruntime-web/) runs the
// server's model on a drawing preprocessed as the server does it (preprocess.js), and answers
// as the server's Predictor does: calibrated probabilities, "uncertain" under the model card's
// uncertain_below, "empty" for no digit.
//
//   const device = await load(base);   // null when this browser or this server cannot
//   const answer = await device.predict(canvas);  // null: ask the server (not a canvas drawing)
//
// The server says which model and which preprocessing go together (GET api/v1/model/ondevice:
// the model's sha256 and the preprocess.js version); both are loaded by those names, so a new
// model never meets old preprocessing. Loaded as a module, on demand, by app.js.

const ORT = "static/vendor/onnxruntime-web/ort.wasm.bundle.min.mjs";

// `base`: the URL the page's paths are relative to (the server's root, or where export-web put
// the files). Resolves to null when WebAssembly is missing or anything fails to load.
export async function load(base = document.baseURI) {
  if (typeof WebAssembly !== "object") return null;
  const url = (path) => new URL(path, base).href;
  const response = await fetch(url("api/v1/model/ondevice"), { cache: "no-cache" });
  if (!response.ok) return null;
  const info = await response.json();
  const [ort, prep, model] = await Promise.all([
    import(url(ORT)),
    import(url(`static/preprocess.js?v=${info.preprocess}`)),
    fetch(url(info.onnx)).then((r) => {
      if (!r.ok) throw new Error(`model: HTTP ${r.status}`);
      return r.arrayBuffer();
    }),
  ]);
  ort.env.wasm.numThreads = 1;  // one thread: no cross-origin isolation needed, no workers
  ort.env.wasm.proxy = false;
  const session = await ort.InferenceSession.create(new Uint8Array(model), {
    executionProviders: ["wasm"],
    graphOptimizationLevel: "all",
  });
  return new OnDevice(ort, prep, session, info);
}

export class OnDevice {
  constructor(ort, prep, session, info) {
    this.ort = ort;
    this.prep = prep;
    this.session = session;
    this.info = info;  // {name, sha256, onnx, preprocess, uncertain_below}
    this.threshold = typeof info.uncertain_below === "number" ? info.uncertain_below : 0.5;
  }

  // The alpha channel of a canvas ({h, w, d}). With `box` ({x, y, w, h} in canvas pixels),
  // only that part is read: the rest is taken as clear (it must hold no ink).
  alpha(canvas, box = null) {
    const c = canvas.getContext("2d", { willReadFrequently: true });
    if (!box) {
      const { data } = c.getImageData(0, 0, canvas.width, canvas.height);
      return this.prep.alphaOf(data, canvas.width, canvas.height);
    }
    const x0 = Math.max(0, Math.floor(box.x)), y0 = Math.max(0, Math.floor(box.y));
    const x1 = Math.min(canvas.width, Math.ceil(box.x + box.w));
    const y1 = Math.min(canvas.height, Math.ceil(box.y + box.h));
    const out = { h: canvas.height, w: canvas.width, d: new Uint8Array(canvas.width * canvas.height) };
    if (x1 <= x0 || y1 <= y0) return out;
    const { data } = c.getImageData(x0, y0, x1 - x0, y1 - y0);
    const part = this.prep.alphaOf(data, x1 - x0, y1 - y0);
    for (let r = 0; r < part.h; r++) out.d.set(part.d.subarray(r * part.w, (r + 1) * part.w), (y0 + r) * out.w + x0);
    return out;
  }

  // A drawing on a transparent canvas -> the answer /api/v1/predict would give (with
  // `image28`, the Float32Array the model read, and `answeredBy: "device"`); null when the
  // canvas is not a drawing on a transparent background (the server reads anything else).
  async predict(canvas, box = null) {
    return this.predictAlpha(this.alpha(canvas, box));
  }

  async predictAlpha(alpha) {
    if (!this.prep.transparent(alpha)) return null;
    const image28 = this.prep.preprocessCanvas(alpha);
    if (image28 === null) {
      return { digit: null, confidence: 0, probabilities: new Array(10).fill(0), reason: "empty",
               candidates: [], image28: new Float32Array(784), answeredBy: "device" };
    }
    const input = new this.ort.Tensor("float32", image28, [1, 1, 28, 28]);
    const output = await this.session.run({ image: input });
    const probabilities = Array.from(output.probabilities.data);
    return { ...this.answer(probabilities), image28, answeredBy: "device" };
  }

  // Predictor._answer: the top three, and "uncertain" under the threshold.
  answer(probabilities) {
    const order = probabilities.map((p, d) => [d, p]).sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    const candidates = order.slice(0, 3).map(([digit, probability]) => ({ digit, probability }));
    const [digit, confidence] = order[0];
    const out = { digit, confidence, probabilities, candidates };
    if (confidence < this.threshold) return { ...out, digit: null, reason: "uncertain" };
    return out;
  }
}

// The 28x28 the model read as a PNG data URL (white ink on black), as the server's
// "preprocessed" field shows it.
export function dataUrl(image28) {
  const c = document.createElement("canvas");
  c.width = 28;
  c.height = 28;
  const ctx = c.getContext("2d");
  const pixels = ctx.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = Math.round(Math.min(Math.max(image28[i], 0), 1) * 255);
    pixels.data.set([v, v, v, 255], 4 * i);
  }
  ctx.putImageData(pixels, 0, 0);
  return c.toDataURL("image/png");
}
