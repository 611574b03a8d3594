// The canvas path of src/digitrec/vision/preprocess.py, for the browser: a drawing's alpha
// channel -> the (28, 28) float image the model reads, or null when it holds no digit.
//
//   preprocessCanvas  preprocess.preprocess_canvas: reduce to ~CANVAS_SIDE px (block means),
//                     the ink (_canvas_ink, _clean_alpha, _clean, _strokes), is_blank (_blank),
//                     to_mnist (crop, stroke width toward MNIST's, fit into 20x20, centre of
//                     mass at (14, 14))
//
// Each function below is named after the Python one it follows, and does what it does step by
// step, in the same order, with float32 values where NumPy keeps float32 (Math.fround after
// each operation that NumPy does in single precision; a Python float meeting a float32 array
// is rounded to float32 first, as NumPy 2 does). tests/test_ondevice_parity.py runs both sides
// on over a thousand drawings in Chromium and fails when they part: change them together.
// No DOM, no network: the same module runs in a page, a worker or Node.

const CANVAS_SIDE = 140;   // preprocess.CANVAS_SIDE
const WORK = 4;            // preprocess.WORK
const MNIST_STROKE = 2.56; // preprocess.MNIST_STROKE
const ANALYSIS = 64;       // preprocess.ANALYSIS
const MIN_CONTRAST = 0.10; // preprocess.MIN_CONTRAST
const MATRIX_LIMIT = 26000; // imageops.MATRIX_LIMIT (both resize paths give the same answers)

const f32 = Math.fround;

// An image: {h, w, d} with d a typed array of h * w values, row by row.
const image = (h, w, Type = Float32Array) => ({ h, w, d: new Type(h * w) });

// Python's round(): halves to the even neighbour.
export function pyRound(x) {
  if (Math.abs(x % 1) === 0.5) return 2 * Math.round(x / 2);
  return Math.round(x);
}

// imageops.box: the bounding box of the pixels where test(value) holds, or null.
function box(a, test) {
  let r0 = a.h, r1 = -1, c0 = a.w, c1 = -1;
  for (let r = 0; r < a.h; r++) {
    const row = r * a.w;
    for (let c = 0; c < a.w; c++) {
      if (test(a.d[row + c])) {
        if (r < r0) r0 = r;
        r1 = r;
        if (c < c0) c0 = c;
        if (c > c1) c1 = c;
      }
    }
  }
  return r1 < 0 ? null : { r0, r1: r1 + 1, c0, c1: c1 + 1 };
}

function crop(a, b) {
  const out = image(b.r1 - b.r0, b.c1 - b.c0, a.d.constructor);
  for (let r = 0; r < out.h; r++) {
    out.d.set(a.d.subarray((b.r0 + r) * a.w + b.c0, (b.r0 + r) * a.w + b.c1), r * out.w);
  }
  return out;
}

// imageops.pad: zeros around, (top, bottom, left, right) px.
function pad(a, top, bottom, left, right) {
  const out = image(a.h + top + bottom, a.w + left + right, a.d.constructor);
  for (let r = 0; r < a.h; r++) out.d.set(a.d.subarray(r * a.w, (r + 1) * a.w), (r + top) * out.w + left);
  return out;
}

// The box of the non-zero pixels of a uint8 image (box(a, (v) => v !== 0), a canvas's worth
// of pixels at a time: no call per pixel).
function boxNonZero(a) {
  const { h, w, d } = a;
  let r0 = -1, r1 = -1, c0 = w, c1 = -1;
  for (let r = 0; r < h; r++) {
    const row = r * w;
    let first = -1;
    for (let c = 0; c < w; c++) if (d[row + c] !== 0) { first = c; break; }
    if (first < 0) continue;
    let last = w - 1;
    while (d[row + last] === 0) last--;
    if (r0 < 0) r0 = r;
    r1 = r;
    if (first < c0) c0 = first;
    if (last > c1) c1 = last;
  }
  return r0 < 0 ? null : { r0, r1: r1 + 1, c0, c1: c1 + 1 };
}

// imageops.mean_pool: uint8 block means, rounded, blocks past the edge padded with zeros.
function meanPool(a, k) {
  if (k === 1) return a;
  const h = Math.ceil(a.h / k), w = Math.ceil(a.w / k), out = image(h, w, Uint8Array);
  const kk = k * k, half = kk >> 1;
  const sums = new Uint32Array(h * w), block = new Int32Array(a.w);
  for (let c = 0; c < a.w; c++) block[c] = Math.floor(c / k);
  for (let r = 0; r < a.h; r++) {
    const row = Math.floor(r / k) * w, at = r * a.w;
    for (let c = 0; c < a.w; c++) sums[row + block[c]] += a.d[at + c];
  }
  for (let i = 0; i < sums.length; i++) out.d[i] = Math.floor((sums[i] + half) / kk);
  return out;
}

// imageops.max_pool (zeros past the edge: the values are >= 0).
function maxPool(a, k) {
  if (k === 1) return a;
  const h = Math.ceil(a.h / k), w = Math.ceil(a.w / k), out = image(h, w, a.d.constructor);
  for (let r = 0; r < a.h; r++) {
    const row = ((r / k) | 0) * w;
    for (let c = 0; c < a.w; c++) {
      const i = row + ((c / k) | 0), v = a.d[r * a.w + c];
      if (v > out.d[i]) out.d[i] = v;
    }
  }
  return out;
}

// imageops.grow: binary dilation by one pixel, 4-connected.
function grow(m) {
  const out = image(m.h, m.w, Uint8Array), { h, w, d } = m;
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      const i = r * w + c;
      out.d[i] = d[i] || (r > 0 && d[i - w]) || (r < h - 1 && d[i + w])
        || (c > 0 && d[i - 1]) || (c < w - 1 && d[i + 1]) ? 1 : 0;
    }
  }
  return out;
}

// imageops.label: 8-connected blobs of a mask, numbered 1..count in the order their first
// pixels come row by row (as scipy.ndimage.label numbers them).
function label(m) {
  const { h, w, d } = m, labels = new Int32Array(h * w), stack = [];
  let count = 0;
  for (let start = 0; start < h * w; start++) {
    if (!d[start] || labels[start]) continue;
    labels[start] = ++count;
    stack.push(start);
    while (stack.length) {
      const i = stack.pop(), r = (i / w) | 0, c = i - r * w;
      for (let dr = -1; dr <= 1; dr++) {
        const rr = r + dr;
        if (rr < 0 || rr >= h) continue;
        for (let dc = -1; dc <= 1; dc++) {
          const cc = c + dc;
          if (cc < 0 || cc >= w) continue;
          const j = rr * w + cc;
          if (d[j] && !labels[j]) { labels[j] = count; stack.push(j); }
        }
      }
    }
  }
  return { labels, count };
}

// ---------------------------------------------------------------- the ink of a canvas

// preprocess._canvas_ink: the strokes' box, reduced k times (block means), cleaned.
function canvasInk(alpha, k) {
  const b = boxNonZero(alpha);
  if (b === null) return null;
  const pooled = meanPool(crop(alpha, b), k);
  return cleanAlpha(pooled, Math.ceil(alpha.h / k) * Math.ceil(alpha.w / k));
}

// preprocess._clean_alpha: mostly opaque strokes are the ink as they are.
function cleanAlpha(alpha, pixels) {
  const x = image(alpha.h, alpha.w);
  let opaque = 0, half = 0;
  for (let i = 0; i < x.d.length; i++) {
    const v = alpha.d[i];
    x.d[i] = f32(v / 255);
    if (v === 255) opaque++;
    if (v >= 128) half++;
  }
  const top = pixels - Math.trunc(0.9999 * (pixels - 1));
  if (opaque < Math.max(top, Math.floor(half / 2) + 1)) return clean(x, pixels);
  const mask = strokes(x);
  if (mask === null) return null;
  for (let i = 0; i < x.d.length; i++) if (alpha.d[i] && !mask.d[i]) return clean(x, pixels);
  return x;
}

// preprocess._clean with paper 0 and noise 0 (a canvas's clear background).
function clean(x, n) {
  const floor = 0;
  const values = x.d.filter((v) => v > floor);
  let level = inkLevel(values, floor, n, () => x.d);
  const b = box(x, (v) => v > floor);
  if (b === null || level - floor < MIN_CONTRAST || level - floor < 0) return null;
  const xc = crop(x, b);
  let ink = scale(xc, floor, level);
  const mask = strokes(ink);
  if (mask === null) return null;
  const inked = [];
  let above = 0;
  for (let i = 0; i < xc.d.length; i++) {
    if (xc.d[i] > floor) {
      above++;
      if (mask.d[i]) inked.push(xc.d[i]);
    }
  }
  if (inked.length < above) {
    level = inkLevel(Float32Array.from(inked), floor, n, () => xc.d.map((v, i) => (mask.d[i] ? v : floor)));
    ink = scale(xc, floor, Math.max(level, floor + 1e-6));
  }
  for (let i = 0; i < ink.d.length; i++) if (!mask.d[i]) ink.d[i] = 0;
  return ink;
}

// preprocess._strokes: blobs over 0.2 that reach 0.6 somewhere, not specks next to the largest,
// grown by a pixel (the anti-aliased rim). null when no blob reaches 0.6.
function strokes(ink) {
  const low = f32(0.2), high = f32(0.6);
  const m = image(ink.h, ink.w, Uint8Array);
  let anyStrong = false;
  for (let i = 0; i < m.d.length; i++) {
    m.d[i] = ink.d[i] > low ? 1 : 0;
    if (ink.d[i] >= high) anyStrong = true;
  }
  const { labels, count } = label(m);
  if (count === 0 || (count === 1 && !anyStrong)) return null;
  if (count > 1) {
    const areas = new Float64Array(count + 1), strong = new Uint8Array(count + 1);
    for (let i = 0; i < m.d.length; i++) {
      if (m.d[i]) areas[labels[i]]++;
      if (ink.d[i] >= high) strong[labels[i]] = 1;
    }
    areas[0] = 0;
    let most = 0;
    for (const a of areas) if (a > most) most = a;
    const keep = new Uint8Array(count + 1);
    let all = true;
    for (let l = 1; l <= count; l++) {
      keep[l] = strong[l] && areas[l] >= 0.02 * most ? 1 : 0;
      if (!keep[l]) all = false;
    }
    if (!all) for (let i = 0; i < m.d.length; i++) if (m.d[i] && !keep[labels[i]]) m.d[i] = 0;
  }
  return grow(m);
}

// preprocess._scale: (x - floor) / (level - floor), clipped to [0, 1], in float32.
function scale(x, floor, level) {
  const out = image(x.h, x.w), f = f32(floor), inv = f32(1 / (level - floor));
  for (let i = 0; i < x.d.length; i++) {
    const v = f32(f32(x.d[i] - f) * inv);
    out.d[i] = v > 1 ? 1 : v < 0 ? 0 : v;
  }
  return out;
}

// imageops.median of float32 values already sorted.
function sortedMedian(s, from = 0) {
  const n = s.length - from, m = from + (n >> 1);
  return n % 2 ? s[m] : f32(f32(s[m - 1] + s[m]) / 2);
}

// preprocess._ink_level: the median of the values over half the peak (the 99.99th percentile).
function inkLevel(above, floor, n, everything) {
  const pos = 0.9999 * (n - 1), whole = Math.trunc(pos), top = n - whole;
  let sorted, peak;
  if (above.length >= top) {
    sorted = Float32Array.from(above).sort();
    const l0 = sorted[sorted.length - top], l1 = sorted[sorted.length - top + Math.min(1, top - 1)];
    peak = f32(l0 + f32(f32(pos - whole) * f32(l1 - l0)));
  } else {
    const all = new Float32Array(n).fill(floor);
    all.set(everything());
    sorted = all.sort();
    const lo = sorted[whole], hi = sorted[Math.min(whole + 1, n - 1)];
    peak = f32(lo + (pos - whole) * (hi - lo));
  }
  const threshold = f32(floor + 0.5 * (peak - floor));
  let from = sorted.length;
  while (from > 0 && sorted[from - 1] > threshold) from--;
  return from < sorted.length ? sortedMedian(sorted, from) : peak;
}

// ---------------------------------------------------------------- is it a digit?

// imageops.line_distance for both axes: each True pixel's distance to the nearest False one
// along its column (axis 0) or its row (axis 1); outside the image is False.
function lineDistance(m, axis) {
  const { h, w, d } = m, out = new Int32Array(h * w);
  const [lines, len, at] = axis === 0 ? [w, h, (l, k) => k * w + l] : [h, w, (l, k) => l * w + k];
  for (let l = 0; l < lines; l++) {
    let k = 0;
    while (k < len) {
      if (!d[at(l, k)]) { k++; continue; }
      let end = k;
      while (end < len && d[at(l, end)]) end++;
      const run = end - k;
      for (let j = 0; j < run; j++) out[at(l, k + j)] = Math.min(j + 1, run - j);
      k = end;
    }
  }
  return out;
}

// imageops.edt2's largest value: the squared distance to the paper of the deepest pixel.
function edt2Max(m) {
  const { h, w } = m, g = lineDistance(m, 0), g2 = g.map((v) => v * v), d2 = Int32Array.from(g2);
  const most = (a) => a.reduce((x, y) => (y > x ? y : x), 0);
  let dx = 1, top = most(d2);
  while (dx * dx < top) {
    for (let r = 0; r < h; r++) {
      for (let c = 0; c < w; c++) {
        const i = r * w + c;
        if (c >= dx) d2[i] = Math.min(d2[i], g2[i - dx] + dx * dx);
        if (c + dx < w) d2[i] = Math.min(d2[i], g2[i + dx] + dx * dx);
      }
    }
    dx++;
    top = most(d2);
  }
  return top;
}

// imageops.deeper_than: some pixel over r px from the paper along both its row and its column.
function deeperThan(m, r) {
  if (r < 0) return m.d.some((v) => v);
  const v = lineDistance(m, 0), h = lineDistance(m, 1);
  for (let i = 0; i < m.d.length; i++) if (v[i] > r && h[i] > r) return true;
  return false;
}

// preprocess._blank: no strong ink, or only dots (specks, a tap of the brush).
function blank(ink, side) {
  const half = f32(0.5);
  let n = 0;
  for (const v of ink.d) if (v > half) n++;
  if (n < 8) return true;
  const b = box(ink, (v) => v > half);
  const s = crop(ink, b);
  const strong = image(s.h, s.w, Uint8Array);
  for (let i = 0; i < s.d.length; i++) strong.d[i] = s.d[i] > half ? 1 : 0;
  const k = Math.max(1, Math.floor(Math.min(strong.h, strong.w) / ANALYSIS));
  const pooled = maxPool(strong, k);
  const { labels, count } = label(pooled);
  let largest;
  if (count === 1) {
    largest = pad(pooled, 1, 1, 1, 1);
  } else {
    const sizes = new Float64Array(count + 1);
    for (let r = 0; r < strong.h; r++) {
      for (let c = 0; c < strong.w; c++) {
        if (strong.d[r * strong.w + c]) sizes[labels[((r / k) | 0) * pooled.w + ((c / k) | 0)]]++;
      }
    }
    let biggest = 1;
    for (let l = 2; l <= count; l++) if (sizes[l] > sizes[biggest]) biggest = l;
    const blob = box({ h: pooled.h, w: pooled.w, d: labels }, (v) => v === biggest);
    if (blob === null) return true;
    const part = crop({ h: pooled.h, w: pooled.w, d: labels }, blob);
    const mask = image(part.h, part.w, Uint8Array);
    for (let i = 0; i < part.d.length; i++) mask.d[i] = part.d[i] === biggest ? 1 : 0;
    largest = pad(mask, 1, 1, 1, 1);
  }
  const extent = k * (Math.max(largest.h, largest.w) - 2);
  if (extent < 0.04 * side) return true;
  if (!deeperThan(largest, Math.floor(extent / (4 * k)))) return false;
  const thickness = 2 * k * Math.sqrt(edt2Max(largest));
  if (extent >= 2 * thickness) return false;
  let area = 0;
  for (const v of largest.d) if (v) area++;
  return k * k * area < 1.5 * Math.PI * (thickness / 2) ** 2;
}

// ---------------------------------------------------------------- to the model's 28x28

// imageops._weights: Pillow's resampling coefficients (box going down, triangle going up),
// each output's row normalised to sum 1, then rounded to float32.
const weightCache = new Map();
function weights(nIn, nOut, isBox) {
  const key = `${nIn},${nOut},${isBox}`;
  if (weightCache.has(key)) return weightCache.get(key);
  const sc = nIn / nOut, stretch = Math.max(sc, 1), support = (isBox ? 0.5 : 1) * stretch;
  const out = new Float32Array(nOut * nIn);
  for (let o = 0; o < nOut; o++) {
    const centre = (o + 0.5) * sc;
    const first = Math.max(Math.trunc(centre - support + 0.5), 0);
    const last = Math.min(Math.trunc(centre + support + 0.5), nIn);
    const k = new Float64Array(nIn);
    let total = 0;
    for (let x = first; x < last; x++) {
      const u = (x - centre + 0.5) / stretch;
      k[x] = isBox ? (u > -0.5 && u <= 0.5 ? 1 : 0) : Math.max(1 - Math.abs(u), 0);
      total += k[x];
    }
    for (let x = 0; x < nIn; x++) out[o * nIn + x] = k[x] / (total === 0 ? 1 : total);
  }
  weightCache.set(key, out);
  return out;
}

// imageops.resize: anti-aliased (area average going down, bilinear going up), rows first.
function resize(a, height, width) {
  const down = height < a.h || width < a.w;
  void MATRIX_LIMIT;  // Pillow's own resize (above the limit) has the same weights
  let cur = a;
  if (width !== cur.w) {
    const wt = weights(cur.w, width, down), out = image(cur.h, width);
    for (let r = 0; r < cur.h; r++) {
      for (let o = 0; o < width; o++) {
        let s = 0;
        for (let x = 0; x < cur.w; x++) s += cur.d[r * cur.w + x] * wt[o * cur.w + x];
        out.d[r * width + o] = s;
      }
    }
    cur = out;
  }
  if (height !== cur.h) {
    const wt = weights(cur.h, height, down), out = image(height, cur.w);
    const row = new Float64Array(cur.w);
    for (let o = 0; o < height; o++) {
      row.fill(0);
      for (let y = 0; y < cur.h; y++) {
        const f = wt[o * cur.h + y];
        if (f === 0) continue;
        for (let c = 0; c < cur.w; c++) row[c] += cur.d[y * cur.w + c] * f;
      }
      out.d.set(row, o * cur.w);
    }
    cur = out;
  }
  return cur === a ? { h: a.h, w: a.w, d: Float32Array.from(a.d) } : cur;
}

// imageops.fit: the longer side to `side` px, keeping the aspect ratio.
function fit(a, side) {
  const f = side / Math.max(a.h, a.w);
  return resize(a, Math.max(1, pyRound(a.h * f)), Math.max(1, pyRound(a.w * f)));
}

// imageops.slide with erode=false: the max over a window of `size` px along `axis`.
function slideMax(a, size, axis) {
  if (size <= 1) return a;
  const out = image(a.h, a.w), before = size >> 1;
  for (let r = 0; r < a.h; r++) {
    for (let c = 0; c < a.w; c++) {
      let m = -Infinity;
      for (let j = -before; j < size - before; j++) {
        const rr = axis === 0 ? r + j : r, cc = axis === 0 ? c : c + j;
        if (rr >= 0 && rr < a.h && cc >= 0 && cc < a.w) m = Math.max(m, a.d[rr * a.w + cc]);
      }
      out.d[r * a.w + c] = m;
    }
  }
  return out;
}

// imageops.morph: grey erosion (or dilation) by disk(radius), the outside neutral. The disk
// holds the offsets with dr^2 + dc^2 <= r^2 + r: a min (max) over row spans of it.
function morph(a, radius, erode) {
  const { h, w } = a, op = erode ? Math.min : Math.max, neutral = erode ? Infinity : -Infinity;
  const spans = new Map();  // half-width -> each pixel's min (max) over its row's span
  const span = (hw) => {
    if (!spans.has(hw)) {
      const s = new Float32Array(h * w);
      for (let r = 0; r < h; r++) {
        for (let c = 0; c < w; c++) {
          let m = neutral;
          for (let cc = Math.max(0, c - hw); cc <= Math.min(w - 1, c + hw); cc++) m = op(m, a.d[r * w + cc]);
          s[r * w + c] = m;
        }
      }
      spans.set(hw, s);
    }
    return spans.get(hw);
  };
  const out = image(h, w);
  out.d.fill(neutral);
  for (let dr = -radius; dr <= radius; dr++) {
    const hw = Math.floor(Math.sqrt(radius * radius + radius - dr * dr) + 1e-9);
    const s = span(hw);
    for (let r = Math.max(0, -dr); r < Math.min(h, h - dr); r++) {
      for (let c = 0; c < w; c++) out.d[r * w + c] = op(out.d[r * w + c], s[(r + dr) * w + c]);
    }
  }
  return out;
}

// imageops.mean_width: 2 * area / outline, the outline's steps times pi / 4.
function meanWidth(ink) {
  const x = pad(ink, 1, 1, 1, 1), { h, w, d } = x;
  let outline = 0, area = 0;
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      const i = r * w + c;
      area += d[i];
      if (r + 1 < h) outline += Math.abs(d[i + w] - d[i]);
      if (c + 1 < w) outline += Math.abs(d[i + 1] - d[i]);
    }
  }
  return outline > 0 ? 2 * area / (outline * Math.PI / 4) : 0;
}

// preprocess.to_mnist: (28, 28) as MNIST was made; zeros for blank input.
export function toMnist(ink) {
  const out = new Float32Array(28 * 28), five = f32(0.05);
  let b = box(ink, (v) => v > five);
  if (b === null) return out;
  let c = crop(ink, b);
  // 1. To the working scale (longer side 80 px), thin lines widened first.
  const workSide = 20 * WORK;
  const pool = Math.trunc(Math.max(c.h, c.w) / workSide / 2);
  if (pool > 1) c = maxPool(c, pool);
  const factor = Math.max(c.h, c.w) / workSide;
  if (factor > 1.5) {
    const size = Math.ceil(factor);
    c = slideMax(slideMax(c, size, 0), size, 1);
  }
  let work = fit(c, workSide);
  // 2. Stroke width toward MNIST's (grey morphology, two radii blended).
  const target = MNIST_STROKE * WORK;
  const width = meanWidth(work);
  if (width > 0) {
    const radius = Math.min(Math.abs(width - target) / 2, 4 * WORK);
    const erode = width > target, inner = Math.trunc(radius), p = Math.ceil(radius);
    work = pad(work, p, p, p, p);
    const near = inner ? morph(work, inner, erode) : work;
    if (radius > inner) {
      const far = morph(work, inner + 1, erode), t = radius - inner;
      const a = f32(1 - t), bb = f32(t), blend = image(work.h, work.w);
      for (let i = 0; i < blend.d.length; i++) blend.d[i] = f32(a * near.d[i]) + f32(bb * far.d[i]);
      work = blend;
    } else {
      work = near;
    }
  }
  b = box(work, (v) => v > five);
  if (b === null) return out;
  // 3. Fit into 20x20 keeping the aspect ratio, ink peak back to 1.
  const digit = fit(crop(work, b), 20);
  let peak = 0;
  for (let i = 0; i < digit.d.length; i++) {
    const v = Math.min(Math.max(digit.d[i], 0), 1);
    digit.d[i] = v;
    if (v > peak) peak = v;
  }
  const by = f32(Math.max(peak, 1e-6));
  for (let i = 0; i < digit.d.length; i++) digit.d[i] = digit.d[i] / by;
  // 4. Paste so the centre of mass lands on (14, 14), a whole-pixel shift.
  const { h, w } = digit;
  let mass = 0, my = 0, mx = 0;
  for (let r = 0; r < h; r++) {
    for (let q = 0; q < w; q++) {
      const v = digit.d[r * w + q];
      mass += v;
      my += v * r;
      mx += v * q;
    }
  }
  const top = Math.min(Math.max(pyRound(14 - my / mass), 0), 28 - h);
  const left = Math.min(Math.max(pyRound(14 - mx / mass), 0), 28 - w);
  for (let r = 0; r < h; r++) out.set(digit.d.subarray(r * w, (r + 1) * w), (top + r) * 28 + left);
  return out;
}

// preprocess._transparent: the frame's median alpha under half (a drawing on a clear canvas).
export function transparent(alpha) {
  const k = Math.max(1, Math.floor(Math.min(alpha.h, alpha.w) / 32));
  const frame = [];
  for (let r = 0; r < alpha.h; r++) {
    for (let c = 0; c < alpha.w; c++) {
      if (r < k || r >= alpha.h - k || c < k || c >= alpha.w - k) frame.push(alpha.d[r * alpha.w + c]);
    }
  }
  // The Python counts the corners twice (four strips); so do we.
  for (let r = 0; r < k; r++) {
    for (let c = 0; c < k; c++) {
      for (const [rr, cc] of [[r, c], [r, alpha.w - 1 - c], [alpha.h - 1 - r, c], [alpha.h - 1 - r, alpha.w - 1 - c]]) {
        frame.push(alpha.d[rr * alpha.w + cc]);
      }
    }
  }
  frame.sort((x, y) => x - y);
  const n = frame.length, m = n >> 1;
  const median = n % 2 ? frame[m] : (frame[m - 1] + frame[m]) / 2;
  return median < 127.5;
}

// preprocess.preprocess_canvas: a canvas's alpha channel ({h, w, d: Uint8Array}) -> the (28, 28)
// Float32Array the model reads, or null when it holds no digit.
export function preprocessCanvas(alpha) {
  const k = Math.max(1, pyRound(Math.min(alpha.h, alpha.w) / CANVAS_SIDE));
  const ink = canvasInk(alpha, k);
  if (ink === null || blank(ink, Math.ceil(Math.max(alpha.h, alpha.w) / k))) return null;
  return toMnist(ink);
}

// The alpha channel of RGBA pixels (ImageData.data): {h, w, d: Uint8Array}.
export function alphaOf(rgba, width, height) {
  const d = new Uint8Array(width * height);
  for (let i = 0; i < d.length; i++) d[i] = rgba[4 * i + 3];
  return { h: height, w: width, d };
}
