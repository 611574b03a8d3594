"""Request and response models: the HTTP contract (README "API"), as /docs shows it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

Digit = Annotated[int, Field(strict=True, ge=0, le=9)]

# A 7 from the MNIST test set, dark ink on white, 28x28 PNG: examples that /docs can send.
SEVEN_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAA2ElEQVR42mP8z4AbMDEMJUkWCLVmthRHtIQKmiQjxJ"
    "9KDxgYGHi1oYIyZSbIOmdf1Lp2/sAJ2ccMDCyizxnkTJB1MjAwMDC8P29ymoGBQ03z3ZQsiMh/DLCGSe8thIUp+VKM"
    "YQ2UiemVqa8F1WFsdI1H2BgP/selc9tvZ0sGHDq/GbEfhXPQJRsZPf/jktzCwn8Ml+QbJcbI/zgk/5gwqtzBJXmTkX"
    "HTfxySD+QZe/4hSyL7c9YjBntGFE8j1B3iZWQ8/R+HziNfGJR5sCUTCNDfK4QtmWAHAPRoNF1JY7DJAAAAAElFTkSuQmCC"
)


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


class ImageErrorOut(BaseModel):
    error: str = Field(description="Why this image has no answer.")
    status: int = Field(
        description="The status a request with this image alone would have had (413, 415, 422)."
    )


class PredictionsOut(BaseModel):
    answers: list[PredictionOut | ImageErrorOut] = Field(
        description="One per image, in the order sent: an answer, or that image's error."
    )


class ReadingsOut(BaseModel):
    answers: list[ReadingOut | ImageErrorOut] = Field(
        description="One per image, in the order sent: a reading, or that image's error."
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


Digits = Annotated[str, Field(pattern=r"^[0-9]{1,64}$")]
Box = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=4, max_length=4)]


class NumberChange(BaseModel):
    """One edit of a number read. `index` is a position among the digits read."""

    kind: Literal["change", "delete", "insert", "retype"] = Field(
        description='"change" digit `index` to `to`; "delete" digit `index` (it was no digit, '
        'or a piece of another); "insert" `to` before digit `index` (the count read: at the '
        'end); "retype": the whole number is `to`.'
    )
    index: Annotated[int, Field(ge=0, le=64)] | None = Field(
        default=None, description="Which digit read (not for retype)."
    )
    to: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,64}$",
        description="The digit (change, insert) or the number (retype).",
    )


class ReadingFeedbackIn(ImageIn):
    read: Digits = Field(description="The digits the model read, left to right (`text` of "
                         "/read, its best guesses when uncertain).")  # fmt: skip
    boxes: list[Box] = Field(
        max_length=64, description="The digits' boxes as /read gave them, [x, y, w, h] each."
    )
    text: Digits = Field(description="The number as the person says it is.")
    changes: list[NumberChange] = Field(
        min_length=1, max_length=64, description="The edits that turn `read` into `text`."
    )
    drawing: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="An id the client gives the image read: a later row with the same id "
        "supersedes an earlier one (the page saves after each edit).",
    )


class ReadingFeedbackOut(BaseModel):
    id: int
    read: str
    text: str
    changes: list[dict[str, Any]] = Field(
        description='As stored: {"kind", "index", "from", "to"}, "from" being what was read.'
    )
    model: str


class Health(BaseModel):
    status: str
    model: str


class Ready(BaseModel):
    status: Literal["ready", "degraded", "not ready"] = Field(
        description='"ready": predictions and corrections; "degraded": predictions only (the '
        'feedback store cannot take corrections, `store` says why); "not ready": the model is '
        "not loaded (503)."
    )
    model: str | None = Field(description="The model serving; null until it is loaded.")
    store: str = Field(
        description='"writable", or why corrections cannot be stored now (e.g. "the feedback '
        'database is unreachable", "the feedback store\'s file is read-only").'
    )
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
