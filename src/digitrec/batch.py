"""Batch answers on Ray Data: many image files, over one machine's cores or a Ray cluster.

`digitrec batch` (commands/batch.py) lists the files on the driver, hands them to Ray Data in
blocks, and a pool of actors answers them: each actor loads the ONNX predictor once and is fed whole
batches (one ONNX Runtime call per batch in `predict` mode). Rows stream back to the driver,
in input order, into one Parquet or JSON lines file, written atomically.

A row holds the fields of the CLI's `predict --format json` (or `read --format json`) answer
for that image, its `file` as listed, the absolute `path` that was read, and `error`: null, or
why the image has no answer (missing, corrupt, not an image). A failed image is a row, never
a failed job.

Ray and PyArrow come with the `ray` extra (`pip install 'digitrec[ray]'`); they are imported
only here, inside the functions that need them, so the core install never needs them.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digitrec.errors import DataError, DigitrecError

log = logging.getLogger(__name__)

MODES = ("predict", "read")
LISTING_SUFFIXES = (".parquet", ".csv")
OUTPUT_SUFFIXES = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
PATH_COLUMNS = ("path", "file")  # the column of a listing that holds the image paths
INSTALL_HINT = "'digitrec batch' needs Ray: pip install 'digitrec[ray]'"


# ---------------------------------------------------------------- inputs


def is_listing(item: str | os.PathLike[str]) -> bool:
    """Whether a command-line input is a listing of paths (.parquet or .csv file)."""
    p = Path(item)
    return p.suffix.lower() in LISTING_SUFFIXES and p.is_file()


def read_listing(path: Path) -> list[str]:
    """The image paths a listing names, in its order: its `path` (or `file`) column, or its
    only column. A CSV with neither header is read as one path per line. Relative paths are
    relative to the current directory, as on the command line."""
    if path.suffix.lower() == ".parquet":
        pq = _import("pyarrow.parquet")
        try:
            schema = pq.read_schema(path)
        except Exception as e:  # ArrowInvalid and kin: not a Parquet file
            raise DataError(path, f"not a readable Parquet file ({e})") from None
        column = _path_column(path, list(schema.names))
        values = pq.read_table(path, columns=[column]).column(column).to_pylist()
    else:
        try:
            with open(path, newline="", encoding="utf-8") as f:
                rows = [row for row in csv.reader(f) if row]
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise DataError(path, f"not a readable CSV file ({e})") from None
        header = [h.strip().lower() for h in rows[0]] if rows else []
        named = [c for c in PATH_COLUMNS if c in header]
        if named:
            index = header.index(named[0])
            values = [row[index] if index < len(row) else "" for row in rows[1:]]
        elif all(len(row) == 1 for row in rows):
            values = [row[0] for row in rows]
        else:
            raise DataError(path, f"no column named {' or '.join(PATH_COLUMNS)} in {rows[0]}")
    files = [str(v).strip() for v in values if v is not None and str(v).strip()]
    if not files:
        raise DataError(path, "the listing names no files")
    return files


def _path_column(path: Path, names: list[str]) -> str:
    lowered = {n.lower(): n for n in names}
    for c in PATH_COLUMNS:
        if c in lowered:
            return lowered[c]
    if len(names) == 1:
        return names[0]
    raise DataError(path, f"no column named {' or '.join(PATH_COLUMNS)} in {names}")


def output_format(output: Path) -> str:
    """parquet or jsonl, from the output file's suffix."""
    kind = OUTPUT_SUFFIXES.get(output.suffix.lower())
    if kind is None:
        raise DigitrecError(f"{output}: give an output ending in .parquet or .jsonl")
    return kind


# ---------------------------------------------------------------- rows


def answer(predictor: Any, mode: str, paths: Sequence[str]) -> list[dict[str, Any]]:
    """One row per path (the CLI's JSON fields, or `error`), in order. Never raises for an
    image: what the CLI reports on stderr for a file becomes that row's `error`."""
    from digitrec.files import not_a_file
    from digitrec.vision.preprocess import load_image

    rows: list[dict[str, Any]] = []
    if mode == "read":
        for path in paths:
            try:
                if problem := not_a_file(Path(path)):
                    raise DigitrecError(problem)
                rows.append(predictor.read(path).to_dict())
            except Exception as e:  # an ImageError, or a bug: this image's row, not the job
                rows.append({"error": _message(e)})
        return rows
    images, where = [], []
    for path in paths:
        try:
            if problem := not_a_file(Path(path)):
                raise DigitrecError(problem)
            images.append(load_image(path))
            where.append(len(rows))
            rows.append({})
        except Exception as e:
            rows.append({"error": _message(e)})
    for i, result in zip(where, predictor.predict_each(images), strict=True):
        failed = isinstance(result, Exception)
        rows[i] = {"error": _message(result)} if failed else result.to_cli_dict()
    return rows


def _message(e: Exception) -> str:
    if isinstance(e, DigitrecError):
        return str(e)
    return f"{type(e).__name__}: {e}"  # not a user error: name the kind, as a traceback would


def schema(mode: str) -> Any:
    """The Arrow schema of the rows: every field of the mode's CLI JSON (null where the CLI
    leaves a key out), then `error`."""
    pa = _import("pyarrow")
    candidates = pa.list_(pa.struct([("digit", pa.int64()), ("probability", pa.float64())]))
    head = [("file", pa.string()), ("path", pa.string())]
    if mode == "read":
        digit = pa.struct(
            [
                ("digit", pa.int64()),
                ("confidence", pa.float64()),
                ("box", pa.list_(pa.int64())),
                ("candidates", candidates),
            ]
        )
        body = [
            ("text", pa.string()),
            ("confidence", pa.float64()),
            ("digits", pa.list_(digit)),
            ("reason", pa.string()),
        ]
    else:
        body = [
            ("digit", pa.int64()),
            ("confidence", pa.float64()),
            ("probabilities", pa.list_(pa.float64())),
            ("reason", pa.string()),
            ("candidates", candidates),
        ]
    return pa.schema([*head, *body, ("error", pa.string())])


def json_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the JSON lines file holds it: the CLI's JSON object plus `path` (keys the CLI
    leaves out stay out), or `file`, `path` and `error` for an image that failed."""
    if row.get("error") is not None:
        return {"file": row["file"], "path": row["path"], "error": row["error"]}
    return {
        k: v
        for k, v in row.items()
        if k != "error" and not (v is None and k in ("reason", "candidates"))
    }


class Answerer:
    """The callable class Ray Data runs as an actor pool: the predictor loaded once per actor,
    then one call per batch (an Arrow table with `file` and `path` columns)."""

    def __init__(self, model: str, mode: str):
        from digitrec.predictor import Predictor

        self.mode = mode
        # one thread: the pool's actors already fill the cores, one each
        self.predictor = Predictor.load(model, threads=1)
        self.schema = schema(mode)

    def __call__(self, batch: Any) -> Any:
        pa = _import("pyarrow")
        files, paths = batch.column("file").to_pylist(), batch.column("path").to_pylist()
        rows = [
            {"file": f, "path": p, **r}
            for f, p, r in zip(files, paths, answer(self.predictor, self.mode, paths), strict=True)
        ]
        return pa.Table.from_pylist(rows, schema=self.schema)


# ---------------------------------------------------------------- the job


@dataclass
class Summary:
    output: Path
    rows: int
    errors: int
    seconds: float  # from the job's start (Ray up) to the output file in place
    workers: int

    @property
    def per_second(self) -> float:
        return self.rows / max(self.seconds, 1e-9)


def run(
    files: Sequence[str | os.PathLike[str]],
    output: Path,
    mode: str = "predict",
    model: str | None = None,
    address: str | None = None,
    cpus: int | None = None,
    workers: int | None = None,
    batch_size: int = 256,
    progress: bool = True,
) -> Summary:
    """Answer every file on Ray Data and write one row per file to `output` (.parquet or
    .jsonl), in the order given.

    Uses the Ray session this process already has; else joins the cluster at `address`; else
    starts a local Ray on `cpus` CPUs (default: all), shut down again at the end. `workers`
    actors (default: one per CPU of the cluster) each hold a predictor."""
    if mode not in MODES:
        raise DigitrecError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    kind = output_format(output)
    if not files:
        raise DigitrecError("no images to answer")
    if batch_size < 1:
        raise DigitrecError(f"batch size must be at least 1, got {batch_size}")
    from digitrec import shipped

    ref = shipped.resolve(model)  # a bad name fails here, before Ray starts
    # the actors load by name, or by a run directory's absolute path (their cwd is not ours)
    model_arg = str(ref.run_dir.resolve()) if ref.run_dir is not None else ref.name
    _import("ray.data")
    ray = _import("ray")
    started = time.perf_counter()
    own = not ray.is_initialized()
    if own:
        quiet = {"logging_level": logging.WARNING, "log_to_driver": True}
        try:
            if address:
                ray.init(address=address, **quiet)
            else:
                ray.init(num_cpus=cpus or os.cpu_count() or 1, include_dashboard=False, **quiet)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise DigitrecError(f"cannot start or join Ray ({address or 'local'}): {e}") from None
    try:
        pool = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        pool = min(pool, math.ceil(len(files) / batch_size))  # no actor without a batch
        rows, errors = _execute(
            ray, files, output, kind, mode, model_arg, pool, batch_size, progress
        )
    finally:
        if own:
            ray.shutdown()
    return Summary(output, rows, errors, time.perf_counter() - started, pool)


def _execute(
    ray: Any,
    files: Sequence[str | os.PathLike[str]],
    output: Path,
    kind: str,
    mode: str,
    model: str,
    pool: int,
    batch_size: int,
    progress: bool,
) -> tuple[int, int]:
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # rows in the order of the input
    context.enable_progress_bars = progress
    items = [{"file": str(f), "path": os.path.abspath(f)} for f in files]
    blocks = max(1, math.ceil(len(items) / batch_size))
    dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
        Answerer,
        fn_constructor_kwargs={"model": model, "mode": mode},
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=pool),
        num_cpus=1,
    )
    rows = errors = 0
    target = schema(mode)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.{os.getpid()}.partial")
    try:
        with _writer(kind, partial, target) as write:
            for table in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
                table = table.select(target.names).cast(target)
                write(table)
                rows += table.num_rows
                errors += table.num_rows - table.column("error").null_count
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    return rows, errors


def _writer(kind: str, path: Path, target: Any) -> Any:
    """A context giving write(table): appends an Arrow table's rows to the file."""
    from contextlib import contextmanager

    @contextmanager
    def parquet() -> Any:
        pq = _import("pyarrow.parquet")
        with pq.ParquetWriter(path, target) as writer:
            yield writer.write_table

    @contextmanager
    def jsonl() -> Any:
        with open(path, "w", encoding="utf-8") as f:

            def write(table: Any) -> None:
                f.writelines(json.dumps(json_row(r)) + "\n" for r in table.to_pylist())

            yield write
            f.flush()
            os.fsync(f.fileno())

    return parquet() if kind == "parquet" else jsonl()


def _import(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise DigitrecError(INSTALL_HINT) from None
