// The service worker: the page, its scripts, ONNX Runtime Web and the model stay in the
// browser, so that a reloaded page still draws and answers with the server gone; corrections
// made meanwhile wait in IndexedDB and are sent once the server answers again.
//
//   GET, this origin   the network first (so a new page or model comes as soon as it is
//                      there), its answer kept; the kept copy when the network fails.
//                      A model by its sha256 (api/v1/model/onnx?sha256=...) and the runtime
//                      (static/vendor/, named in CACHE) never change: the kept copy first.
//   POST api/v1/feedback
//                      each correction gets an Idempotency-Key, which the server stores with
//                      it: one sent twice (a lost answer, a retry) is stored once. When the
//                      server cannot be reached it is queued in IndexedDB and the page gets
//                      202 {"queued": true}; the queue is sent, oldest first, whenever the
//                      worker starts, the page loads or any request reaches the server.
"use strict";

// Bump with the runtime (tools/onnxruntime-web.lock.json): its files are kept by path.
const CACHE = "digitrec-v1-ort-1.31.1";
const SHELL = ["./", "static/app.js", "static/style.css", "static/ondevice.js",
  "static/manifest.webmanifest", "static/icon-192.png", "static/icon-512.png",
  "static/vendor/onnxruntime-web/ort.wasm.bundle.min.mjs",
  "static/vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm"];
const QUEUE_DB = "digitrec-queue";

// The shell, and the model and preprocessing the server names as a pair (ondevice.js).
async function install() {
  const cache = await caches.open(CACHE);
  await cache.addAll(SHELL);
  const pair = await fetch("api/v1/model/ondevice");
  const info = await pair.clone().json();
  await cache.put("api/v1/model/ondevice", pair);
  await cache.addAll([info.onnx, `static/preprocess.js?v=${info.preprocess}`]);
}

self.addEventListener("install", (event) => {
  event.waitUntil(install().then(() => self.skipWaiting()));
});
self.addEventListener("activate", (event) => {
  const old = caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))));
  event.waitUntil(old.then(() => self.clients.claim()).then(flush));
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (url.origin !== self.location.origin) return;
  if (event.request.method === "POST" && url.pathname.endsWith("/api/v1/feedback")) {
    event.respondWith(feedback(event.request));
  } else if (event.request.method === "GET" && !url.pathname.endsWith("/sw.js")) {
    // The model by its sha256 and the runtime (15 MB) never change under one name.
    const immutable = (url.pathname.endsWith("/api/v1/model/onnx") && url.searchParams.has("sha256"))
      || url.pathname.includes("/static/vendor/");
    event.respondWith(immutable ? cacheFirst(event.request) : networkFirst(event.request));
  }
});

async function networkFirst(request) {
  try {
    const response = await fetch(request);
    if (response.ok) {
      const copy = response.clone();
      caches.open(CACHE).then((c) => c.put(request, copy));
      flush();  // the server is back: send what waits
    }
    return response;
  } catch (e) {
    const kept = await caches.match(request, { ignoreVary: true });
    if (kept) return kept;
    throw e;
  }
}

async function cacheFirst(request) {
  const kept = await caches.match(request);
  if (kept) return kept;
  const response = await fetch(request);
  if (response.ok) {
    const copy = response.clone();
    await caches.open(CACHE).then((c) => c.put(request, copy));
  }
  return response;
}

// ---------------------------------------------------------------- corrections

function db() {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(QUEUE_DB, 1);
    open.onupgradeneeded = () => open.result.createObjectStore("feedback", { keyPath: "key" });
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
}

async function store(mode, work) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const tx = d.transaction("feedback", mode);
    const result = work(tx.objectStore("feedback"));
    tx.oncomplete = () => resolve(result.result);
    tx.onerror = () => reject(tx.error);
  });
}

async function send(url, key, body) {
  return fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Idempotency-Key": key },
    body,
  });
}

async function feedback(request) {
  const key = request.headers.get("Idempotency-Key") || crypto.randomUUID();
  const body = await request.text();
  try {
    return await send(request.url, key, body);
  } catch {
    await store("readwrite", (s) => s.put({ key, url: request.url, body, time: Date.now() }));
    return new Response(JSON.stringify({ queued: true }), {
      status: 202, headers: { "Content-Type": "application/json" },
    });
  }
}

let flushing = null;
// Sends the queued corrections, oldest first; each leaves the queue once the server has
// answered it (a 2xx, or a 4xx it would answer again). Stops at the first that cannot go.
function flush() {
  if (!flushing) {
    flushing = (async () => {
      const items = (await store("readonly", (s) => s.getAll())) || [];
      items.sort((a, b) => a.time - b.time);
      for (const item of items) {
        let response;
        try { response = await send(item.url, item.key, item.body); } catch { break; }
        if (response.status >= 500 || response.status === 429) break;
        await store("readwrite", (s) => s.delete(item.key));
      }
    })().catch(() => {}).finally(() => { flushing = null; });
  }
  return flushing;
}

self.addEventListener("message", (event) => {
  if (event.data === "flush") event.waitUntil(flush());
});
