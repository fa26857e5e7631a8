"""`seglab-compare SWEEP_DIR --dashboard`: optuna-dashboard on a search's study (optuna.journal,
or optuna.db from earlier versions), started as a user starts it and read through its HTTP API:
the trials, their intermediate values and the pruned ones."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from seglab.cli.compare import main
from seglab.sweeps.dashboard import dashboard_app, find_study, storage_for

BIN = Path(sys.executable).parent
DATA = Path(__file__).parent / "data"
STUDY = "synthetic_optuna"
# (state, intermediate values per validation step, value): what a search leaves in its study
TRIALS = [(TrialState.COMPLETE, [0.10, 0.25, 0.30], 0.30),
          (TrialState.COMPLETE, [0.20, 0.40, 0.55], 0.55),
          (TrialState.PRUNED, [0.05, 0.06], None),
          (TrialState.FAIL, [], None)]
API_STATES = ["Complete", "Complete", "Pruned", "Fail"]


def write_study(storage) -> None:
    """The TRIALS, made with ask/report/tell as the search makes them."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    for state, curve, value in TRIALS:
        trial = study.ask()
        trial.suggest_float("optimizer.lr", 1e-4, 1e-2, log=True)
        trial.suggest_categorical("loss", ["ce", "dice"])
        for step, metric in enumerate(curve):
            trial.report(metric, step)
        study.tell(trial, value, state=state)


def start_a_trial(journal: Path, first_value: float) -> optuna.trial.FrozenTrial:
    """What a running search adds to its study: a trial that has reported one validation."""
    study = optuna.load_study(study_name=STUDY,
                              storage=JournalStorage(JournalFileBackend(str(journal))))
    trial = study.ask()
    trial.suggest_float("optimizer.lr", 1e-4, 1e-2, log=True)
    trial.report(first_value, 0)
    return study.trials[-1]


def journal_sweep(folder: Path) -> Path:
    folder.mkdir()
    write_study(JournalStorage(JournalFileBackend(str(folder / "optuna.journal"))))
    return folder


def sqlite_sweep(folder: Path) -> Path:
    folder.mkdir()
    write_study(f"sqlite:///{folder / 'optuna.db'}")
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)


class Dashboard:
    """`seglab-compare SWEEP --dashboard` through the console script, as a user starts it. Its
    output goes to files (a pipe nobody reads while it serves would fill and block it), and it
    gets SIGINT as a terminal gives it (a shell may start the tests with SIGINT ignored, which
    children inherit)."""

    def __init__(self, sweep: Path, port: int, logs: Path):
        self.url = f"http://127.0.0.1:{port}"
        self.out, self.err = logs / "stdout.txt", logs / "stderr.txt"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-X", "importtime", str(BIN / "seglab-compare"), str(sweep),
                 "--dashboard", "--host", "127.0.0.1", "--port", str(port)],
                stdout=out, stderr=err,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def wait_for(self, route: str, until=lambda answer: True, timeout: float = 30) -> dict:
        """GET `route` until it answers (and the answer passes `until`); a server that dies
        first fails the test with its stderr."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"the dashboard exited with {self.process.returncode}:\n"
                            + self.err.read_text()[-3000:])
            try:
                answer = get_json(self.url + route)
                if until(answer):
                    return answer
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"no answer (or not the one awaited) from {self.url + route} in "
                            f"{timeout} s:\n" + self.err.read_text()[-3000:])
            time.sleep(0.1)

    def stop(self, how: signal.Signals) -> int:
        """Send `how` and wait for the exit; its exit status."""
        self.process.send_signal(how)
        try:
            return self.process.wait(timeout=10)
        finally:
            self.process.kill()


def check_study_detail(detail: dict) -> None:
    """The API's study: every trial in order, its state, its intermediate values and value."""
    assert detail["name"] == STUDY and detail["directions"] == ["maximize"]
    assert len(detail["trials"]) == len(TRIALS)
    assert [trial["state"] for trial in detail["trials"]] == API_STATES
    for trial, (state, curve, value) in zip(detail["trials"], TRIALS, strict=True):
        assert [point["value"] for point in trial["intermediate_values"]] == curve
        assert [point["step"] for point in trial["intermediate_values"]] == list(
            range(len(curve)))
        if state == TrialState.PRUNED:  # optuna's tell keeps its last intermediate value
            value = curve[-1]
        assert trial.get("values") == (None if value is None else [value])
        assert {param["name"] for param in trial["params"]} == {"optimizer.lr", "loss"}
    assert detail["has_intermediate_values"] is True
    assert [trial["number"] for trial in detail["best_trials"]] == [1]


def test_the_dashboard_serves_a_journal_study_and_stops_on_ctrl_c(tmp_path):
    sweep = journal_sweep(tmp_path / "sweep")
    port = free_port()
    server = Dashboard(sweep, port, tmp_path)
    try:
        studies = server.wait_for("/api/studies")
        assert [study["study_name"] for study in studies["study_summaries"]] == [STUDY]
        study_id = studies["study_summaries"][0]["study_id"]
        check_study_detail(get_json(f"{server.url}/api/studies/{study_id}"))
        with urllib.request.urlopen(f"{server.url}/", timeout=5) as page:  # what a browser opens
            assert page.url.endswith("/dashboard") and b"<html" in page.read().lower()
        running = start_a_trial(sweep / "optuna.journal", first_value=0.15)
        assert running.state == TrialState.RUNNING
        latest = server.wait_for(f"/api/studies/{study_id}", until=lambda detail: len(
            detail["trials"]) == len(TRIALS) + 1)["trials"][-1]
        assert latest["state"] == "Running"
        assert latest["intermediate_values"] == [{"step": 0, "value": 0.15}]
    finally:
        code = server.stop(signal.SIGINT)
    err = server.err.read_text()
    assert code == 0, err[-3000:]
    assert "Traceback" not in err and "dashboard stopped" in err
    assert server.out.read_text() == (f"optuna-dashboard on {sweep / 'optuna.journal'}: open "
                                      f"http://127.0.0.1:{port}/ (Ctrl-C stops it)\n")
    imported = {line.rsplit("|", 1)[1].strip() for line in err.splitlines()
                if line.startswith("import time:")}
    assert "optuna_dashboard" in imported
    assert not imported & {"torch", "lightning", "hydra", "omegaconf"}
    with pytest.raises(urllib.error.URLError):  # stopped: nothing listens there any more
        get_json(f"{server.url}/api/studies")


def test_the_dashboard_serves_an_sqlite_study_of_an_earlier_search(tmp_path):
    sweep = sqlite_sweep(tmp_path / "sweep")
    server = Dashboard(sweep, free_port(), tmp_path)
    try:
        studies = server.wait_for("/api/studies")
        study_id = studies["study_summaries"][0]["study_id"]
        check_study_detail(get_json(f"{server.url}/api/studies/{study_id}"))
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == -signal.SIGTERM


def test_the_journal_is_the_study_when_both_files_are_there(tmp_path):
    sweep = journal_sweep(tmp_path / "sweep")
    (sweep / "optuna.db").write_bytes(b"")
    assert find_study(sweep) == sweep / "optuna.journal"
    assert find_study(sweep / "optuna.db") == sweep / "optuna.db"
    assert storage_for(sweep / "optuna.db") == f"sqlite:///{sweep.resolve() / 'optuna.db'}"


def test_a_study_from_optuna_2_10_gets_the_dashboards_upgrade_page(tmp_path):
    """tests/data/optuna_2_10_study.db: the dashboard on it asks to upgrade the schema (and
    does not change the file by itself)."""
    (tmp_path / "sweep").mkdir()
    copy = shutil.copy(DATA / "optuna_2_10_study.db", tmp_path / "sweep" / "optuna.db")
    app = dashboard_app(storage_for(find_study(tmp_path / "sweep")))
    environ: dict = {"PATH_INFO": "/dashboard"}
    setup_testing_defaults(environ)
    answers = []
    app(environ, lambda status, headers, *_: answers.append((status, dict(headers))))
    status, headers = answers[0]
    assert status.startswith("302") and headers["Location"].endswith("/incompatible-rdb-schema")
    with sqlite3.connect(copy) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [
            ("v2.6.0.a",)]


@pytest.mark.parametrize(("make", "code", "message"), [
    (lambda folder: folder.mkdir(), 1,
     "error: no Optuna study in {folder}: expected optuna.journal or optuna.db there (a search "
     "run with hydra.sweeper.storage=<database URL> is opened with `optuna-dashboard <URL>`)"),
    (lambda folder: None, 2, "error: no such folder: {folder}"),
    (lambda folder: folder.write_text(""), 2,
     "error: {folder} is a file: give the sweep folder (with optuna.journal or optuna.db), or "
     "open the file with `optuna-dashboard`"),
])
def test_a_folder_without_a_study_is_one_line(tmp_path, capsys, make, code, message):
    folder = tmp_path / "sweep"
    make(folder)
    with pytest.raises(SystemExit) as raised:
        main([str(folder), "--dashboard"])
    assert raised.value.code == code
    assert capsys.readouterr().err == message.format(folder=folder) + "\n"


def test_without_optuna_dashboard_it_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # its import raises ImportError
    with pytest.raises(SystemExit) as raised:
        main([str(journal_sweep(tmp_path / "sweep")), "--dashboard"])
    assert raised.value.code == 1
    assert capsys.readouterr().err == ("error: the dashboard needs optuna-dashboard "
                                       "(optuna_dashboard is not installed): "
                                       "pip install 'seglab[optuna]'\n")


def test_a_busy_port_is_one_line(tmp_path, capsys):
    sweep = journal_sweep(tmp_path / "sweep")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as raised:
            main([str(sweep), "--dashboard", "--port", str(port)])
    assert raised.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: cannot serve the dashboard on 127.0.0.1:{port}: ")
    assert err.endswith("(choose another --port)\n")


def test_dashboard_takes_one_sweep_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as raised:
        main([str(tmp_path), str(tmp_path), "--dashboard"])
    assert raised.value.code == 2
    assert "--dashboard takes one sweep folder" in capsys.readouterr().err
