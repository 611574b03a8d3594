"""Request and response models: the HTTP contract (README "API"), as /docs shows it."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

Digit = Annotated[int, Field(strict=True, ge=0, le=9)]


# A 28x28 PNG of a drawn 7 (132 bytes): the example /docs sends is an image the API takes.
EXAMPLE_IMAGE = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAAS0lEQVR42sXSQQoAIAgEQD"
    "f6/5ftEqVW0l7Ki6COIAiVcxR536w9w5c1k8ia6tbqwvYSY5Q8ZUJSGshJCynpICM9JGSA9zJCwYe/bVcbDTk2PeiE"
    "AAAAAElFTkSuQmCC"
)


class ImageIn(BaseModel):
    image: str = Field(
        min_length=1,
        description="The image as a data URL (data:image/png;base64,...) or bare base64.",
        examples=[EXAMPLE_IMAGE],
        json_schema_extra={
            "contentMediaType": "image/*",
            "pattern": r"^(data:image/[-+.\w]+;base64,)?[A-Za-z0-9+/=\s]+$",
        },
    )


class Candidate(BaseModel):
    digit: int
    probability: float


class PredictionOut(BaseModel):
    digit: int | None = Field(description="The digit, or null when the image is not a digit.")
    confidence: float = Field(description="Probability of `digit` (of the top class when null).")
    probabilities: list[float] = Field(description="Probability of each digit 0..9.")
    preprocessed: str = Field(description="The 28x28 image the model saw, as a PNG data URL.")
    reason: str | None = Field(
        default=None,
        description='Only when digit is null: "empty" (no ink) or "uncertain".',
    )
    candidates: list[Candidate] = Field(default=[], description="The top 3 digits.")


class ReadDigitOut(BaseModel):
    digit: int = Field(description="The most likely digit (also when it is uncertain).")
    confidence: float
    box: list[int] = Field(description="[x, y, w, h] in the input image's pixels.")
    candidates: list[Candidate] = Field(default=[], description="The top 3 digits.")


class ReadingOut(BaseModel):
    text: str | None = Field(
        description="The number read, left to right; null when there is none or a digit is "
        "uncertain (see reason)."
    )
    confidence: float = Field(
        default=0.0, description="That every digit is right: the product of their confidences."
    )
    digits: list[ReadDigitOut] = Field(description="Left to right, uncertain ones included.")
    reason: str | None = Field(
        default=None, description='Only when text is null: "empty" or "uncertain".'
    )


class FeedbackIn(ImageIn):
    label: Digit = Field(description="What the digit really is, 0..9.")
    predicted: Digit | None = Field(
        default=None, description="What the model answered (null: not a digit)."
    )


class FeedbackOut(BaseModel):
    id: int
    label: int
    predicted: int | None
    model: str


class Health(BaseModel):
    status: str
    model: str


class Ready(BaseModel):
    status: str = Field(description='"ready", or "not ready"')
    model: str | None = Field(description="The model serving; null until it is loaded.")
    store_writable: bool = Field(description="The feedback store can take corrections.")


class ErrorOut(BaseModel):
    error: str = Field(description="What is wrong with the request.")


ModelCard = dict[str, Any]

# Documented on every route that takes input; the body is always {"error": "..."}.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Unreadable HTTP, no Host, or a Host not served"},
    408: {"model": ErrorOut, "description": "Headers or body not sent in time"},
    413: {"model": ErrorOut, "description": "Body or image too large"},
    415: {"model": ErrorOut, "description": "Not an image"},
    422: {"model": ErrorOut, "description": "Malformed request, or over the work budget"},
    431: {"model": ErrorOut, "description": "Request headers too large or too many"},
    503: {"model": ErrorOut, "description": "Busy: connection limit or pixel budget (Retry-After)"},
}

# /feedback's own: a client past its rate, a store that cannot take the row.
FEEDBACK_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "From another site's page, or without the API key"},
    422: {"model": ErrorOut, "description": "Malformed request, or an image without ink"},
    429: {"model": ErrorOut, "description": "Too many corrections from this address (Retry-After)"},
    503: {"model": ErrorOut, "description": "Feedback store unavailable (read-only, locked)"},
    507: {"model": ErrorOut, "description": "Feedback store full (its cap, or the disk)"},
}
