"""Several images in one request to /api/v1/predict or /api/v1/read: how they are sent, and
their answers, one per image and in order, each with its own error.

- multipart: the field `files`, once per image (or `file` more than once);
- JSON: `{"images": ["<data URL or base64>", ...]}`.

At most MAX_IMAGES images, all in one body under the server's body limit
(`DIGITREC_MAX_BODY_BYTES`). The one-image forms (a single `file`, `{"image": ...}`, an image
body) are answered as before, with the one-image shape: deps.image_bytes reads them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from digitrec.errors import ImageError
from digitrec.serve.deps import decode_image_text, image_bytes, malformed, parse_json

MAX_IMAGES = 64  # images in one request
FIELDS = ("file", "files")  # the multipart fields that carry images


class Problem(Exception):
    """One image of several that cannot be read from the request: its answer is this error."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


async def images_in(request: Request) -> bytes | list[bytes | Problem]:
    """One image's bytes (a one-image request), or a list for a request that sent several:
    each image's bytes, or the Problem that keeps it from being read."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        try:  # parsed once here; image_bytes reads the same parsed form
            form = await request.form(max_files=MAX_IMAGES + 1, max_fields=MAX_IMAGES + 8)
        except HTTPException as e:  # Starlette answers a broken multipart body with a 400
            raise malformed(f"multipart body: {e.detail}") from None
        parts = [(name, value) for name, value in form.multi_items() if name in FIELDS]
        if len(parts) == 1 and parts[0][0] == "file":
            return await image_bytes(request)
        if not parts:
            raise malformed("multipart field 'file' (one image) or 'files' (several) is missing")
        if any(name == "files" and not isinstance(value, UploadFile) for name, value in parts):
            raise malformed("multipart field 'files' takes image files, not text")
        bounded(len(parts))
        return [await _part(value) for _, value in parts]
    if content_type == "application/json" or content_type.endswith("+json"):
        body = parse_json(await request.body())
        if isinstance(body, dict) and "images" in body and "image" not in body:
            texts = body["images"]
            if (
                not isinstance(texts, list)
                or not texts
                or not all(isinstance(x, str) for x in texts)
            ):
                raise malformed('"images" must be a list of data URLs or base64 strings')
            bounded(len(texts))
            return [_text(t) for t in texts]
    return await image_bytes(request)


def bounded(count: int) -> None:
    if count > MAX_IMAGES:
        raise malformed(f"{count} images in one request: at most {MAX_IMAGES}")


async def _part(value: UploadFile | str) -> bytes | Problem:
    if isinstance(value, UploadFile):
        data = await value.read()
        return data if data else Problem("image: empty")
    return _text(value)  # a data URL sent as a text field


def _text(text: object) -> bytes | Problem:
    try:
        data = decode_image_text(text)
    except HTTPException as e:
        return Problem(str(e.detail), e.status_code)
    return data


async def answer_each(
    images: list[bytes | Problem],
    answer: Callable[[bytes], Awaitable[Any]],
    refused: Callable[[], None],
) -> list[dict[str, Any]]:
    """Each image's answer (`answer(image).to_dict()`) or its error, `{"error", "status"}`, in
    order. The images are asked about together: on /predict they join one batch."""
    import asyncio

    async def one(image: bytes | Problem) -> dict[str, Any]:
        if isinstance(image, Problem):
            refused()
            return {"error": str(image), "status": image.status}
        try:
            answered: dict[str, Any] = (await answer(image)).to_dict()
            return answered
        except ImageError as e:
            return {"error": str(e), "status": e.status}

    return list(await asyncio.gather(*(one(i) for i in images)))
