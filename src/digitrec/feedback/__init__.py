"""Corrections people made ("it was a 7", "it reads 21667"), kept for retraining.

    rows      what both stores share: the rows, what a row keeps, the `Store` protocol, errors
    schema    the tables of both stores and their migrations
    sqlite    the default store, one SQLite file under the data directory (FeedbackStore)
    postgres  the store several servers share (PostgresStore; psycopg imported only then)
    database  a PostgreSQL URL: the driver, the URL shown without its password
    stores    `open_store` / `open_existing`: the one or the other
    review    the ids a person accepts or rejects, the contact sheets to decide on
    export    accepted rows as a Kaggle CSV, corrected numbers as JSON lines, a Dataset

The names below are the ones scripts use; `from digitrec.feedback import FeedbackStore` works
as it did when this was one module. feedback.postgres is not imported here.
"""

from __future__ import annotations

from digitrec.feedback.export import (
    accepted_dataset,
    export_csv,
    export_readings,
    reading_record,
)
from digitrec.feedback.review import contact_sheet, edit_text, parse_ids, readings_sheet
from digitrec.feedback.rows import (
    CHANGE_KINDS,
    IMAGE_SIDE,
    LATEST,
    NUMBER_SIDE,
    ROW_MAX_BYTES,
    STATUSES,
    Feedback,
    ReadingFeedback,
    Store,
    StoreError,
    StoreFull,
    StoreUnavailable,
    apply_changes,
    image_png,
    reading_row,
    row_images,
    seen_pixels,
    seen_png,
    stored_changes,
)
from digitrec.feedback.schema import INDEX, MIGRATION, READINGS, SCHEMA, SCHEMA_VERSION
from digitrec.feedback.sqlite import DB_NAME, WAL_LIMIT, FeedbackStore, default_data_dir, now
from digitrec.feedback.stores import open_existing, open_store

__all__ = [
    "CHANGE_KINDS",
    "DB_NAME",
    "IMAGE_SIDE",
    "INDEX",
    "LATEST",
    "MIGRATION",
    "NUMBER_SIDE",
    "READINGS",
    "ROW_MAX_BYTES",
    "SCHEMA",
    "SCHEMA_VERSION",
    "STATUSES",
    "WAL_LIMIT",
    "Feedback",
    "FeedbackStore",
    "ReadingFeedback",
    "Store",
    "StoreError",
    "StoreFull",
    "StoreUnavailable",
    "accepted_dataset",
    "apply_changes",
    "contact_sheet",
    "default_data_dir",
    "edit_text",
    "export_csv",
    "export_readings",
    "image_png",
    "now",
    "open_existing",
    "open_store",
    "parse_ids",
    "reading_record",
    "reading_row",
    "readings_sheet",
    "row_images",
    "seen_pixels",
    "seen_png",
    "stored_changes",
]
