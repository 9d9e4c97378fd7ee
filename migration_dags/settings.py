"""Where things are: the migrations folder, the target database, Dagster's home.

Each is resolved from an explicit argument, then an environment variable, then a default, and
nothing is read at import time (no hidden global state):

    migrations folder   --migrations-dir, MIGRATION_DAGS_MIGRATIONS_DIR, ./assets
    database URL        --database-url, MIGRATION_DAGS_DATABASE_URL, else the embedded server
    DAGSTER_HOME        DAGSTER_HOME, else ./.dagster_home
    embedded data dir   MIGRATION_DAGS_EMBEDDED_DIR, else ./.migration_dags/pgdata
"""

from __future__ import annotations

import os
from pathlib import Path

MIGRATIONS_DIR_ENV = "MIGRATION_DAGS_MIGRATIONS_DIR"
DATABASE_URL_ENV = "MIGRATION_DAGS_DATABASE_URL"
EMBEDDED_DIR_ENV = "MIGRATION_DAGS_EMBEDDED_DIR"
EXPECTATIONS_DIR_ENV = "MIGRATION_DAGS_EXPECTATIONS_DIR"
# "off": no progress bar or lines on stderr while a backfill runs (the CLI's --quiet and --json
# set it for their own process; the run's logs and metadata keep the progress)
PROGRESS_ENV = "MIGRATION_DAGS_PROGRESS"
# "server": the tool's sessions keep the server's parallel query settings (db/connect.py)
PARALLEL_ENV = "MIGRATION_DAGS_PARALLEL"


def project_root() -> Path:
    """The folder holding assets/ and expectations/: the current folder, or this checkout."""
    cwd = Path.cwd()
    if (cwd / "assets").is_dir():
        return cwd
    return Path(__file__).resolve().parent.parent


def migrations_dir(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get(MIGRATIONS_DIR_ENV):
        return Path(os.environ[MIGRATIONS_DIR_ENV])
    return project_root() / "assets"


def expectations_dir(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get(EXPECTATIONS_DIR_ENV):
        return Path(os.environ[EXPECTATIONS_DIR_ENV])
    return project_root() / "expectations"


def configured_database_url(explicit: str | None = None) -> str | None:
    """The URL the user configured, or None (meaning: use the embedded server). A migration's
    own `database: {url_env: X}` is resolved by orchestration.target_database, which wins."""
    if explicit:
        return explicit
    return os.environ.get(DATABASE_URL_ENV) or None


def database_url(explicit: str | None = None) -> str:
    url = configured_database_url(explicit)
    if url:
        return url
    from .embedded import embedded_database_url

    return embedded_database_url()


def dagster_home() -> Path:
    """DAGSTER_HOME, created if missing. A home we create gets our dagster.yaml (below); a home of
    the user's own (DAGSTER_HOME set) is left as they made it."""
    explicit = os.environ.get("DAGSTER_HOME")
    home = Path(explicit or (project_root() / ".dagster_home"))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not explicit and not config.exists():
        write_dagster_yaml(home)
    os.environ["DAGSTER_HOME"] = str(home.resolve())
    return home


# What a home we create holds: storage stays SQLite files (deploy/dagster.yaml puts it in
# PostgreSQL), made cheaper per run, which is most of a small migration's `up`: every run's events
# in one SQLite file (WAL) instead of a new database file per run, and no stdout/stderr capture
# files per step (the steps' logs stay in the event log). Telemetry off, so no banner either.
DAGSTER_YAML = """\
# written by migration-dags (settings.py) for the DAGSTER_HOME it created
telemetry:
  enabled: false
event_log_storage:
  module: dagster._core.storage.event_log
  class: ConsolidatedSqliteEventLogStorage
  config:
    base_dir: {env: DAGSTER_HOME}
compute_logs:
  module: dagster._core.storage.noop_compute_log_manager
  class: NoOpComputeLogManager
"""


def write_dagster_yaml(home: Path) -> None:
    (home / "dagster.yaml").write_text(DAGSTER_YAML)


def embedded_dir() -> Path:
    return Path(os.environ.get(EMBEDDED_DIR_ENV) or (project_root() / ".migration_dags" / "pgdata"))


def parallel_workers_wanted() -> bool:
    """Whether the tool's sessions may use parallel workers (MIGRATION_DAGS_PARALLEL=server)."""
    return os.environ.get(PARALLEL_ENV, "").lower() == "server"


def terminal_progress_wanted() -> bool:
    return os.environ.get(PROGRESS_ENV, "").lower() != "off"
