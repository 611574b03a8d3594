"""`digitrec export-web DIR`: the web page as static files that any static host serves, with
no Python behind it, answering drawings on the device (ONNX Runtime Web).

    DIR/index.html, DIR/static/...     the page, its scripts, ONNX Runtime Web, the icons
    DIR/sw.js                           the service worker (offline, installable)
    DIR/api/v1/model/ondevice           the model and preprocessing pair, as the server says it
    DIR/api/v1/model/onnx               the model's graph (the page asks for ...?sha256=, which a
                                        static host ignores)
    DIR/healthz                         the model's name, for the page's footer

The page's requests go to paths relative to DIR, so DIR may live under any path of a host.
What only the server can do (a number, a photo, corrections) is pointed at `server` when one
is given (that server must allow the page's origin: CORS is not part of `digitrec serve`);
without one those requests reach the static host and fail, and the page says it cannot save.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from digitrec import shipped
from digitrec.files import atomic_write_bytes
from digitrec.predictor import UNCERTAIN_BELOW

STATIC = Path(__file__).parent / "serve" / "static"


def export_web(out: Path, model: str | None = None, server: str | None = None) -> list[Path]:
    """Write the page into `out` (created; files already there are replaced); the files
    written, relative to `out`."""
    ref = shipped.resolve(model)
    graph = ref.onnx.read_bytes()
    sha = hashlib.sha256(graph).hexdigest()
    prep = hashlib.sha256((STATIC / "preprocess.js").read_bytes()).hexdigest()[:12]
    api = (server.rstrip("/") + "/api/") if server else "./api/"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(STATIC, out / "static", dirs_exist_ok=True)
    (out / "static" / "sw.js").unlink()
    (out / "static" / "index.html").unlink()
    html = (STATIC / "index.html").read_text().replace('"/static/', '"./static/')
    html = html.replace('href="/docs"', f'href="{api}../docs"' if server else 'href="#"')
    app_js = (STATIC / "app.js").read_text()
    # fetch() resolves against the page, import() against the script (static/app.js).
    app_js = app_js.replace('"/api/', f'"{api}').replace('"/static/', '"./')
    app_js = app_js.replace('"/sw.js"', '"./sw.js"').replace('"/healthz"', '"./healthz"')
    info = {
        "name": ref.name,
        "sha256": sha,
        "onnx": f"api/v1/model/onnx?sha256={sha}",
        "preprocess": prep,
        "uncertain_below": float(ref.card.get("uncertain_below", UNCERTAIN_BELOW)),
    }
    files = {
        "index.html": html.encode(),
        "static/app.js": app_js.encode(),
        "sw.js": (STATIC / "sw.js").read_bytes(),
        "api/v1/model/ondevice": json.dumps(info).encode(),
        "api/v1/model/onnx": graph,
        "healthz": json.dumps({"status": "ok", "model": ref.name}).encode(),
    }
    for name, data in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / name, data)
    return sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
