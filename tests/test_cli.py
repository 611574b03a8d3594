"""The CLI as a user meets it: files written, lines printed, one-line errors, exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitrec import data


def digitrec(
    *args: str, cwd: Path | None = None, columns: int = 80
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "digitrec", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        env={**os.environ, "COLUMNS": str(columns)},  # the width rich lays tables out in
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_help_lists_every_command() -> None:
    """Each command has its own row in the help's command panel (its name, then its summary),
    not just a mention in the app's one-line description."""
    result = digitrec("--help")
    assert result.returncode == 0
    rows = re.findall(r"^\W*(\w+)\s{2,}\S", result.stdout, re.MULTILINE)
    commands = ["explore", "train", "ensemble", "evaluate", "export", "ship", "predict", "read",
                "batch", "submit", "serve", "feedback"]  # fmt: skip
    assert [r for r in rows if r in commands] == commands
    assert "pip install 'digitrec[ray]'" in " ".join(result.stdout.split())


def test_explore_writes_summary_and_figures(tmp_path: Path) -> None:
    result = digitrec("explore", "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["train"]["images"] == 60000 and summary["test"]["per_class"][0] == 980
    for name in ("samples.png", "mean_digits.png", "class_histogram.png", "pixel_histogram.png"):
        png = (tmp_path / name).read_bytes()
        assert png[:4] == b"\x89PNG" and len(png) > 5000, name


def test_evaluate_writes_report_and_figures(trained_run: Path) -> None:
    result = digitrec("evaluate", "--model", str(trained_run))
    assert result.returncode == 0, result.stderr
    report = json.loads((trained_run / "report.json").read_text())
    assert report["total"] == 10000 and report["accuracy"] >= 0.95
    assert np.array(report["confusion"]).sum() == 10000
    assert len(report["per_class"]) == 10 and report["mistakes"]
    assert f"test_accuracy {report['accuracy']:.4f}" in result.stdout
    for name in ("confusion.png", "mistakes.png"):
        assert (trained_run / name).read_bytes()[:4] == b"\x89PNG"


def test_evaluate_with_test_time_augmentation(tmp_path: Path, trained_run: Path) -> None:
    labelled = data.load_mnist("test").subset(np.arange(500))
    data.write_csv(labelled, tmp_path / "some.csv")
    out = tmp_path / "eval"
    args = ["evaluate", "--model", str(trained_run), "--data", str(tmp_path / "some.csv")]
    plain = digitrec(*args, "-o", str(out))
    tta = digitrec(*args, "-o", str(out), "--tta")
    assert plain.returncode == 0 and tta.returncode == 0, tta.stderr
    assert "(test-time augmentation)" in tta.stdout and "augmentation" not in plain.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["tta"] is True and report["total"] == 500 and report["accuracy"] >= 0.95


def test_export_checks_onnx_against_torch(trained_run: Path) -> None:
    result = digitrec("export", "--model", str(trained_run))
    assert result.returncode == 0, result.stderr
    assert (trained_run / "model.onnx").stat().st_size > 10000
    assert json.loads((trained_run / "export.json").read_text())["max_difference"] < 1e-4


def test_submit_writes_kaggle_file(tmp_path: Path, trained_run: Path) -> None:
    test = data.load_mnist("test").subset(np.arange(200))
    data.write_csv(test, tmp_path / "test.csv", with_labels=False)
    out = tmp_path / "submission.csv"
    result = digitrec(
        "submit", str(tmp_path / "test.csv"), "-o", str(out), "--model", str(trained_run)
    )
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "ImageId,Label" and len(lines) == 201 and lines[1].startswith("1,")
    labels = np.array([int(line.split(",")[1]) for line in lines[1:]])
    assert (labels == test.labels).mean() >= 0.9


def test_train_smoke_prints_figures(tmp_path: Path) -> None:
    result = digitrec(
        "train",
        "--model",
        "seed",
        "--max-steps",
        "30",
        "--epochs",
        "1",
        "--split-seed",
        "3",
        "-o",
        str(tmp_path / "run"),
    )
    assert result.returncode == 0, result.stderr
    assert "test_accuracy" in result.stdout and "run directory" in result.stdout
    assert (tmp_path / "run" / "metrics.json").exists()
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["split_seed"] == 3 and config["train"]["seed"] == 5


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["train", "--data", "missing.csv", "--max-steps", "1"], ["missing.csv: file not found"]),
        (["train", "--model", "nope"], ["'--model': 'nope' is not one of 'seed', 'whitened'"]),
        (["train", "--recipe", "nope"], ["'--recipe': 'nope' is not one of 'tutorial', 'fast'"]),
        (["train", "--optimizer", "nope"], ["'--optimizer': 'nope' is not one of 'adam', 'adamw'"]),
        (["train", "--schedule", "cosine"], ["'--schedule': 'cosine' is not one of 'constant'"]),
        (["train", "--augment", "heavy"], ["'--augment': 'heavy' is not one of 'none', 'light'"]),
        (["train", "--val-fraction", "1"], ["val_fraction 1.0: must be in [0, 1)"]),
        (["predict", "x.png", "--format", "jsn"], ["'--format' / '-f': 'jsn' is not one of"]),
        (["train", "--resume", "nowhere"], ["nowhere: no checkpoint.safetensors to resume from"]),
        (
            ["predict", "x.png", "--model", "runs/typo/best"],
            ["runs/typo/best: not a run directory"],
        ),
        (["evaluate", "--data", "unlabelled.csv"], ["unlabelled.csv: evaluation needs labels"]),
        (["evaluate", "--model", "no-such-model"], ["no-such-model: no such model"]),
        (["submit", "bad.csv"], ["bad.csv, row 3, column pixel1: not an integer"]),
        (["explore", "--data", "bad.csv"], ["bad.csv, row 3, column pixel1"]),
    ],
)
def test_user_errors_are_one_line(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    header = ",".join(f"pixel{i}" for i in range(784))
    good = ",".join(["0"] * 784)
    (tmp_path / "bad.csv").write_text(f"{header}\n{good}\n0,oops{good[3:]}\n")
    (tmp_path / "unlabelled.csv").write_text(f"{header}\n{good}\n")
    assert_one_line_error(digitrec(*args, cwd=tmp_path), *fragments)


def test_submit_with_a_field_over_the_csv_limit_is_one_line(tmp_path: Path) -> None:
    header = ",".join(f"pixel{i}" for i in range(784))
    (tmp_path / "huge.csv").write_text(f'{header}\n"{"9" * 200_000}"\n')
    result = digitrec("submit", str(tmp_path / "huge.csv"), cwd=tmp_path)
    assert_one_line_error(result, "huge.csv, row 2: not a valid CSV file", "field larger")


def test_predict_on_a_fifo_or_a_device_is_one_line(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    for path, kind in [(fifo, "a named pipe (FIFO)"), (Path("/dev/zero"), "a device")]:
        for command in ("predict", "read"):
            result = digitrec(command, str(path), "-m", "fast")
            assert_one_line_error(result, f"{path}: not a regular file ({kind})")


def test_submit_on_a_fifo_is_one_line(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "test.csv")
    result = digitrec("submit", str(tmp_path / "test.csv"), cwd=tmp_path)
    assert_one_line_error(result, "test.csv: not a regular file")


def test_names_with_terminal_escapes_are_printed_escaped(tmp_path: Path) -> None:
    image = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(image).line([(70, 60), (210, 60), (120, 230)], fill=0, width=22)
    name = "\x1b]0;owned\x07\x1b[31mred[bold].png"
    image.save(tmp_path / name)
    table = digitrec("predict", name, "-m", "fast", cwd=tmp_path, columns=200)
    missing = digitrec("predict", "gone\x1b[2J.png", "-m", "fast", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "\x1b" not in table.stdout and "\x07" not in table.stdout
    assert "\\x1b]0;owned\\x07\\x1b[31mred[bold].png" in table.stdout  # all of it, [bold] too
    assert_one_line_error(missing, "gone\\x1b[2J.png")
    assert "\x1b" not in missing.stderr


def feedback_store(directory: Path) -> None:
    from digitrec.feedback import FeedbackStore

    store = FeedbackStore(directory)
    for label, points in [(1, [(140, 40), (140, 240)]), (7, [(70, 60), (210, 60), (120, 230)])]:
        for _ in range(2):
            image = Image.new("RGBA", (280, 280))
            ImageDraw.Draw(image).line(points, fill=(0, 0, 0, 255), width=22)
            store.add(image, label=label, predicted=None, model="fake")
    store.close()


def test_feedback_review_then_export(tmp_path: Path) -> None:
    feedback_store(tmp_path / "data")
    review = ["feedback", "review", "--data-dir", str(tmp_path / "data")]
    first = digitrec(*review, "--sheet", str(tmp_path / "sheet.png"))
    assert first.returncode == 0, first.stderr
    assert "4 of 4 pending (ids 1..4)" in first.stdout
    assert "4 pending, 0 accepted, 0 rejected" in first.stdout
    assert Image.open(tmp_path / "sheet.png").size == (4 * 220, 136)

    decided = digitrec(*review, "--accept", "1,3-4", "--reject", "2", "--sheet", "left.png")
    assert decided.returncode == 0, decided.stderr
    assert "accepted 3, rejected 1" in decided.stdout
    assert "0 pending, 3 accepted, 1 rejected" in decided.stdout
    assert not (tmp_path / "left.png").exists()  # nothing pending: no sheet

    out = tmp_path / "corrections.csv"
    export = digitrec("feedback", "export", "--data-dir", str(tmp_path / "data"), "-o", str(out))
    assert export.returncode == 0, export.stderr
    assert "3 accepted corrections" in export.stdout
    corrections = data.load_csv(out)
    assert corrections.labels is not None and corrections.labels.tolist() == [1, 7, 7]


def test_feedback_review_then_export_of_corrected_numbers(tmp_path: Path) -> None:
    from digitrec.feedback import FeedbackStore

    store = FeedbackStore(tmp_path / "data")
    number = Image.new("RGBA", (560, 280))
    ImageDraw.Draw(number).line([(100, 40), (100, 240)], fill=(0, 0, 0, 255), width=20)
    for text, drawing in [("7", "d-1"), ("4", "d-1"), ("17", None)]:  # d-1 saved twice
        store.add_reading(number, "1", text, [[90, 40, 20, 200]],
                          [{"kind": "retype", "to": text}], "fake", drawing)  # fmt: skip
    store.close()
    review = ["feedback", "review", "--readings", "--data-dir", str(tmp_path / "data")]
    first = digitrec(*review, "--sheet", str(tmp_path / "numbers.png"))
    assert first.returncode == 0, first.stderr
    assert "2 of 2 pending (ids 2..3)" in first.stdout  # d-1's first save is superseded
    assert Image.open(tmp_path / "numbers.png").size == (2 * 300, 196)
    decided = digitrec(*review, "--accept", "2-3", "--sheet", str(tmp_path / "left.png"))
    assert decided.returncode == 0, decided.stderr
    assert "0 pending, 2 accepted, 0 rejected" in decided.stdout
    assert_one_line_error(digitrec(*review, "--reject", "7"), "no corrected numbers with ids 7")

    out = tmp_path / "readings.jsonl"
    export = ["feedback", "export", "--readings", "--data-dir", str(tmp_path / "data")]
    done = digitrec(*export, "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "2 accepted corrected numbers" in done.stdout
    assert [json.loads(line)["text"] for line in out.read_text().splitlines()] == ["4", "17"]
    digits = digitrec("feedback", "export", "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert "0 accepted corrections" in digits.stdout  # the digits' export is its own


def test_feedback_review_errors_are_one_line(tmp_path: Path) -> None:
    feedback_store(tmp_path / "data")
    review = ["feedback", "review", "--data-dir", str(tmp_path / "data")]
    assert_one_line_error(digitrec(*review, "--accept", "1,99"), "no feedback rows with ids 99")
    assert_one_line_error(digitrec(*review, "--reject", "two"), "not an id or a range of ids")
    nowhere = digitrec("feedback", "review", "--data-dir", str(tmp_path / "none"))
    assert_one_line_error(nowhere, "none: no feedback store here")


@pytest.mark.parametrize(
    ("usable", "args", "workers"),
    [
        ({0, 1, 2, 3, 4, 5}, [], 6),  # one worker per core by default
        ({2, 5}, [], 2),  # the cores this process may use (taskset, a container's cpuset)
        ({0}, [], 1),
        ({0, 1, 2, 3}, ["--workers", "1"], 1),  # `--workers` says otherwise: one process
        ({0, 1}, ["--workers", "3"], 3),
    ],
)
def test_serve_runs_one_worker_per_core_unless_told(
    usable: set[int], args: list[str], workers: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The worker count `serve` settles on, the server itself never started."""
    import uvicorn
    from typer.testing import CliRunner

    from digitrec.cli import app
    from digitrec.serve import app as server

    started: dict[str, object] = {}
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: usable, raising=False)
    monkeypatch.setattr(uvicorn, "run", lambda target, **options: started.update(options))
    monkeypatch.setattr(
        server, "serve_workers", lambda config: started.update(workers=config.workers)
    )
    monkeypatch.setenv("DIGITREC_DATA_DIR", str(tmp_path))  # run_server sets it: restored after
    monkeypatch.setenv("DIGITREC_MODEL", "fast")
    result = CliRunner().invoke(
        app, ["serve", "--model", "fast", "--data-dir", str(tmp_path), *args]
    )
    assert result.exit_code == 0, result.output
    assert started["workers"] == workers
    assert f"({workers} worker" in result.output


def test_cores_without_an_affinity_are_the_machine_s(monkeypatch: pytest.MonkeyPatch) -> None:
    from digitrec.serve.workers import cores

    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert cores() == 3
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # unknown: one
    assert cores() == 1


def test_serve_refuses_zero_workers() -> None:
    result = digitrec("serve", "--workers", "0")
    assert result.returncode != 0 and "Traceback" not in result.stderr


# ---------------------------------------------------------------- stdin, progress, completion

ROOT = Path(__file__).resolve().parents[1]
SEVEN = ROOT / "benchmarks" / "canvas7.png"  # a 7 drawn in Chromium
NUMBER = ROOT / "tests" / "realworld" / "numbers_000_canvas_plain.png"  # "526"


def piped(*args: str, stdin: bytes, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "digitrec", *args],
        input=stdin, capture_output=True, cwd=cwd, timeout=300,
    )  # fmt: skip


def test_dash_reads_an_image_or_file_names_from_stdin(tmp_path: Path) -> None:
    done = piped("predict", "--format", "json", "-", stdin=SEVEN.read_bytes())
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    assert (row["file"], row["digit"]) == ("-", 7)
    done = piped("read", "--format", "json", "-", stdin=NUMBER.read_bytes())
    assert json.loads(done.stdout)["text"] == "526"
    # names, one per line, as `find` prints them; answered in their order, with other inputs
    (tmp_path / "a.png").write_bytes(SEVEN.read_bytes())
    names = f"{NUMBER}\n\na.png\n".encode()
    done = piped("predict", "-f", "json", str(SEVEN), "-", cwd=tmp_path, stdin=names)
    assert done.returncode == 0, done.stderr
    files = [json.loads(line)["file"] for line in done.stdout.splitlines()]
    assert files == [str(SEVEN), str(NUMBER), "a.png"]
    done = piped("read", "-", stdin=b"")
    assert (done.returncode, done.stderr.decode()) == (
        1,
        "error: -: no image and no file names on standard input\n",
    )
    done = piped("predict", "-", stdin=b"\xff\xfe\x00garbage")  # binary, but no image
    assert done.returncode == 1 and done.stderr.decode().startswith("-: not an image")


def on_a_terminal(*args: str, cwd: Path) -> tuple[int, str]:
    """Run with stderr on a pseudo-terminal (stdout piped): (exit status, what stderr showed)."""
    import pty

    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "100"}
    with subprocess.Popen(
        [sys.executable, "-m", "digitrec", *args],
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=follower, env=env,
    ) as process:  # fmt: skip
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the process closed its end
                break
            if not chunk:
                break
            shown += chunk
        status = process.wait(timeout=300)
    os.close(leader)
    return status, shown.decode(errors="replace")


def test_a_progress_bar_on_a_terminal_only_and_not_with_quiet(tmp_path: Path) -> None:
    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(30):
        (folder / f"{i:02}.png").write_bytes(SEVEN.read_bytes())
    status, shown = on_a_terminal("predict", "-f", "json", str(folder), cwd=tmp_path)
    assert status == 0 and "predict" in shown and "30/30" in shown, shown
    status, shown = on_a_terminal("read", "-f", "json", str(folder), cwd=tmp_path)
    assert status == 0 and "30/30" in shown, shown
    status, shown = on_a_terminal("predict", "-q", "-f", "json", str(folder), cwd=tmp_path)
    assert status == 0 and "30/30" not in shown and "predict" not in shown, shown
    # a whole test set: evaluate's bar counts images
    status, shown = on_a_terminal("evaluate", "-m", "fast", "-o", str(tmp_path / "e"), cwd=tmp_path)
    assert status == 0 and "evaluate" in shown and "10000/10000" in shown, shown
    piped_run = digitrec("predict", "-f", "json", str(folder))  # stderr a pipe: no bar
    assert piped_run.returncode == 0 and piped_run.stderr == ""
    assert len(piped_run.stdout.splitlines()) == 30


def test_shell_completion_is_on() -> None:
    env = {**os.environ, "_DIGITREC_COMPLETE": "complete_bash", "COMP_WORDS": "digitrec pre",
           "COMP_CWORD": "1"}  # fmt: skip
    script = Path(sys.executable).parent / "digitrec"  # the installed command
    done = subprocess.run([script], env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["predict"]
    assert "--install-completion" in digitrec("--help", columns=200).stdout


def test_train_s_flags_are_the_config_s_fields() -> None:
    """Each TrainConfig field declared with `config.flag` is a `train` option with the field's
    help (its default filled in) and, for a setting with choices, exactly those choices."""
    import dataclasses

    import typer.main
    from typer.testing import CliRunner

    from digitrec.cli import app
    from digitrec.config import TrainConfig

    command = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    options = {p.name: p for p in command.params}
    declared = [f for f in dataclasses.fields(TrainConfig) if "help" in f.metadata]
    assert len(declared) == 21 and "betas" not in options  # not every field is a flag
    for f in declared:
        option = options[f.name]
        assert option.help == f.metadata["help"].format(default=f.default)
        assert option.default is None  # not given: the recipe's, else the field's default
        if choices := f.metadata["choices"]:
            flag = f"--{f.name.replace('_', '-')}"
            result = CliRunner().invoke(app, ["train", flag, "nope"], standalone_mode=False)
            listed = ", ".join(f"'{c.value}'" for c in choices)
            assert f"'nope' is not one of {listed}." in result.exception.format_message()  # type: ignore[union-attr]
    assert options["output"].opts == ["--output", "-o"] and options["styles"].opts == ["--styles"]
    assert options["ensemble"].default == 1 and options["recipe"].default is None
