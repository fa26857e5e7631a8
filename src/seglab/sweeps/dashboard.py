"""optuna-dashboard on a sweep's study, as `seglab-compare SWEEP_DIR --dashboard` serves it.

A search keeps its Optuna study in the sweep folder: `optuna.journal` (a journal file, the
default now) or `optuna.db` (SQLite, written by searches of earlier seglab versions). This
module finds that file, opens it the way `optuna-dashboard` does and serves the dashboard's
web UI (trials, their intermediate values, the pruned ones) until Ctrl-C. optuna and
optuna-dashboard are the optional extra `seglab[optuna]`, imported only when serving; nothing
here imports torch, lightning or hydra.
"""

from __future__ import annotations

import socket
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

JOURNAL = "optuna.journal"  # where a search keeps its study (seglab.sweeps.study)
SQLITE = "optuna.db"  # where searches of earlier seglab versions kept it
INSTALL = "pip install 'seglab[optuna]'"


class DashboardError(Exception):
    """A sweep folder without a study, a missing extra or a busy port, said in one line;
    `code` is the exit status."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


class ThreadedServer(ThreadingMixIn, WSGIServer):
    """wsgiref with a thread per request, as optuna-dashboard's own command serves: the page
    loads its scripts and polls the study at once. Ctrl-C does not wait for open requests."""

    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    """Keeps the terminal to the URL line: the page polls the study every 10 s, and a line per
    request would bury it."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def find_study(sweep_dir: Path) -> Path:
    """The study file of a sweep folder: `optuna.journal`, else `optuna.db`. A path to one of
    them is taken as it is."""
    if sweep_dir.is_file() and sweep_dir.name in (JOURNAL, SQLITE):
        return sweep_dir
    if sweep_dir.is_file():
        raise DashboardError(f"{sweep_dir} is a file: give the sweep folder (with {JOURNAL} or "
                             f"{SQLITE}), or open the file with `optuna-dashboard`", code=2)
    if not sweep_dir.is_dir():
        raise DashboardError(f"no such folder: {sweep_dir}", code=2)
    for name in (JOURNAL, SQLITE):
        if (sweep_dir / name).is_file():
            return sweep_dir / name
    raise DashboardError(
        f"no Optuna study in {sweep_dir}: expected {JOURNAL} or {SQLITE} there (a search run "
        "with hydra.sweeper.storage=<database URL> is opened with `optuna-dashboard <URL>`)")


def storage_for(study_file: Path) -> Any:
    """What optuna-dashboard opens: a JournalStorage for a journal file, the `sqlite:///` URL
    for SQLite (the dashboard then offers to upgrade a study written by an older optuna)."""
    path = study_file.resolve()
    if path.name == SQLITE:
        return f"sqlite:///{path}"
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(path)))


def dashboard_app(storage: Any) -> Any:
    """optuna-dashboard's WSGI app (its public `wsgi()`) on a storage or storage URL."""
    try:
        from optuna_dashboard import wsgi
    except ImportError as error:
        raise DashboardError(f"the dashboard needs optuna-dashboard ({error.name} is not "
                             f"installed): {INSTALL}") from None
    return wsgi(storage)


def listen(app: Any, host: str, port: int) -> WSGIServer:
    """A threaded server bound to host:port (port 0: any free port)."""
    try:
        return make_server(host, port, app, server_class=ThreadedServer,
                           handler_class=QuietHandler)
    except OSError as error:
        hint = "check --host" if isinstance(error, socket.gaierror) else "choose another --port"
        raise DashboardError(f"cannot serve the dashboard on {host}:{port}: "
                             f"{error.strerror or error} ({hint})") from None


def serve(sweep_dir: Path, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve optuna-dashboard on the sweep's study until Ctrl-C; prints the URL to open. The
    study is read live, so a running search shows each trial as it reports."""
    study_file = find_study(sweep_dir)
    try:
        storage = storage_for(study_file)
    except ImportError as error:
        raise DashboardError(f"the dashboard needs optuna ({error.name} is not installed): "
                             f"{INSTALL}") from None
    server = listen(dashboard_app(storage), host, port)
    print(f"optuna-dashboard on {study_file}: open http://{host}:{server.server_port}/ "
          "(Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
