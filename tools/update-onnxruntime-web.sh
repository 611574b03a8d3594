#!/usr/bin/env bash
# Vendor ONNX Runtime Web (npm `onnxruntime-web`) into the page's static files, pinned.
#
#   tools/update-onnxruntime-web.sh            the version in tools/onnxruntime-web.lock.json again
#   tools/update-onnxruntime-web.sh 1.32.0     another version
#
# The page runs the model on the plain WebAssembly backend, so only two files of the package
# are kept: ort.wasm.bundle.min.mjs (the JavaScript API with the Emscripten loader bundled in)
# and ort-wasm-simd-threaded.wasm (the runtime). No WebGPU, WebGL or JSEP build. The npm
# tarball's integrity (sha512) is checked against the registry's before anything is copied.
# The tarball carries no license file: LICENSE and ThirdPartyNotices.txt come from the
# `onnxruntime` Python package of the same project (MIT), installed in .venv by `make setup`.
# Writes src/digitrec/serve/static/vendor/onnxruntime-web/ and the lockfile (version, tarball
# URL, integrity, sha256 and size of each file); tests/test_ondevice_vendor.py checks them.
# Needs npm (the npm registry) and python3.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LOCK="$ROOT/tools/onnxruntime-web.lock.json"
DEST="$ROOT/src/digitrec/serve/static/vendor/onnxruntime-web"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
FILES=(ort.wasm.bundle.min.mjs ort-wasm-simd-threaded.wasm)

if [[ $# -ge 1 ]]; then
  VERSION="$1"
else
  VERSION="$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' "$LOCK")"
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

TARBALL_URL="$(npm view "onnxruntime-web@$VERSION" dist.tarball)"
INTEGRITY="$(npm view "onnxruntime-web@$VERSION" dist.integrity)"
npm pack --silent "onnxruntime-web@$VERSION" >/dev/null
TGZ="onnxruntime-web-$VERSION.tgz"
GOT="sha512-$(openssl dgst -sha512 -binary "$TGZ" | base64 -w0)"
if [[ "$GOT" != "$INTEGRITY" ]]; then
  echo "error: $TGZ integrity $GOT, the registry says $INTEGRITY" >&2
  exit 1
fi
tar xzf "$TGZ"

ORT_PY="$("$PYTHON" -c 'import os, onnxruntime; print(os.path.dirname(onnxruntime.__file__))')"
ORT_PY_VERSION="$("$PYTHON" -c 'import onnxruntime; print(onnxruntime.__version__)')"

rm -rf "$DEST"
mkdir -p "$DEST"
for f in "${FILES[@]}"; do
  cp "package/dist/$f" "$DEST/$f"
done
cp "$ORT_PY/LICENSE" "$DEST/LICENSE"
cp "$ORT_PY/ThirdPartyNotices.txt" "$DEST/ThirdPartyNotices.txt"

"$PYTHON" - "$LOCK" "$DEST" "$VERSION" "$TARBALL_URL" "$INTEGRITY" "$ORT_PY_VERSION" <<'EOF'
import hashlib, json, os, sys
lock, dest, version, url, integrity, py_version = sys.argv[1:]
files = {}
for name in sorted(os.listdir(dest)):
    data = open(os.path.join(dest, name), "rb").read()
    files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
doc = {
    "package": "onnxruntime-web",
    "version": version,
    "tarball": url,
    "integrity": integrity,
    "license": "MIT",
    "license_files_from": f"the onnxruntime Python package {py_version} (LICENSE, "
    "ThirdPartyNotices.txt): the npm tarball carries none",
    "files": files,
}
with open(lock + ".tmp", "w") as out:
    json.dump(doc, out, indent=2)
    out.write("\n")
os.replace(lock + ".tmp", lock)
EOF
echo "onnxruntime-web $VERSION -> $DEST"
ls -l "$DEST"
