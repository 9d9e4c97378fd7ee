"""The tags every CLI run carries: migration, step, direction, actor, code_version (the git commit
of the migration file, `-dirty` when the file has uncommitted changes), source=cli."""

from __future__ import annotations

import getpass
import os
import subprocess
from pathlib import Path

from .spec import Migration

# CI systems name the person who started the pipeline in these variables, most specific first.
CI_ACTOR_VARIABLES = (
    "GITHUB_ACTOR",
    "GITLAB_USER_LOGIN",
    "BUILDKITE_BUILD_CREATOR",
    "CIRCLE_USERNAME",
    "BUILD_REQUESTEDFOR",  # Azure Pipelines
    "BITBUCKET_STEP_TRIGGERER_UUID",
)


def actor(explicit: str | None = None) -> str:
    if explicit:
        return explicit
    for variable in CI_ACTOR_VARIABLES:
        if os.environ.get(variable):
            return os.environ[variable]
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, as in some containers
        return "unknown"


def code_version(file: Path) -> str | None:
    """The commit holding the migration file, or None outside a git checkout."""
    folder = str(Path(file).resolve().parent)

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", folder, *args], capture_output=True, text=True,
                                  timeout=5, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    changed = git("status", "--porcelain", "--", str(Path(file).resolve()))
    return f"{commit}-dirty" if changed else commit


def base_tags(migration: Migration, actor_name: str, database_url: str | None = None) -> dict[str, str]:
    """The tags shared by every run of one CLI command; add `step` and `direction` per run.
    With `database_url`, the target database (target_host, target_port, target_database; never
    the password or user); always the migration file's sha256 (file_checksum)."""
    from .drift import checksum

    tags = {"migration": migration.name, "actor": actor_name, "source": "cli",
            "file_checksum": checksum(migration.file)}
    version = code_version(migration.file)
    if version:
        tags["code_version"] = version
    if database_url is not None:
        tags.update(target_tags(database_url))
    return tags


def target_tags(database_url: str) -> dict[str, str]:
    """host, port and database name of a libpq URL or key=value string; nothing secret."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(database_url)
    except Exception:  # noqa: BLE001 - unreadable URLs fail elsewhere, with their own message
        return {}
    return {"target_host": str(parts.get("host") or parts.get("hostaddr") or "(local socket)"),
            "target_port": str(parts.get("port") or "5432"),
            "target_database": str(parts.get("dbname") or parts.get("user") or "")}


def target_text(database_url: str) -> str:
    """host:port/dbname, as the audit prints it."""
    t = target_tags(database_url)
    return f"{t['target_host']}:{t['target_port']}/{t['target_database']}" if t else "(unreadable)"


# set on the runs of `up`/`down --allow-changed`: the steps go on although the migration file
# changed since it was applied (drift.py); the audit shows the tag and each step's file_changed
ALLOW_CHANGED_TAG = "allow_changed"


def allows_changed(tags: dict[str, str]) -> bool:
    return tags.get(ALLOW_CHANGED_TAG) == "true"


# set on the run of `complete` (the cutover step): the quiet period it asked for, and whether it
# contracts although writes in the old shape were seen within it (expand/old_shape_writes.py)
QUIET_SECONDS_TAG = "quiet_seconds"
FORCE_COMPLETE_TAG = "force_complete"


def complete_tags(quiet_seconds: float | None, force: bool) -> dict[str, str]:
    tags = {QUIET_SECONDS_TAG: f"{quiet_seconds:g}"} if quiet_seconds is not None else {}
    if force:
        tags[FORCE_COMPLETE_TAG] = "true"
    return tags


def complete_options(tags: dict[str, str]):
    """The CompleteOptions a run's tags ask for (the defaults where they say nothing; a run
    launched from the UI may set either tag in the launchpad)."""
    from .expand import CompleteOptions

    try:
        quiet = float(tags.get(QUIET_SECONDS_TAG, "nan"))
    except ValueError:
        quiet = float("nan")
    defaults = CompleteOptions()
    return CompleteOptions(quiet_seconds=quiet if quiet >= 0 else defaults.quiet_seconds,
                           force=tags.get(FORCE_COMPLETE_TAG) == "true")
