"""Fault injection for the crash tests: die at the k-th checkpoint, as a kill -9 would.

Checkpoints sit where a kill leaves a distinct state: before and after each action the
ActionRunner runs, after a step is recorded started, before it is recorded applied or undone,
after each backup copy and each backfill batch. In production nothing is armed and a checkpoint
is one comparison.

    MIGRATION_DAGS_CRASH_AT=K   (environment, read once per process) the K-th checkpoint ends the
                                process at once with os._exit(137): no finally, no rollback sent,
                                the server sees the connection drop, as with SIGKILL
    armed(K, action, only)      (tests, in-process) the K-th checkpoint raises InjectedCrash, a
                                BaseException nothing in the package catches; or calls `action`
                                instead (e.g. stop the server); with `only`, only checkpoints
                                whose label starts with it count
    counting()                  records every checkpoint's label, to enumerate them
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable, Iterator

ENV = "MIGRATION_DAGS_CRASH_AT"
EXIT_CODE = 137  # what a shell reports for a process killed by SIGKILL


class InjectedCrash(BaseException):
    """The in-process stand-in for kill -9: not an Exception, so no step's undo runs."""


_at: int | None = None
_only = ""
_action: Callable[[str], None] | None = None
_count = 0
_labels: list[str] | None = None
_env_read = False


def checkpoint(label: str) -> None:
    global _count, _env_read
    if not _env_read:
        _env_read = True
        if os.environ.get(ENV) and _at is None:
            _arm(int(os.environ[ENV]), _exit_now)
    if _at is None and _labels is None:
        return
    if _labels is not None:
        _labels.append(label)
    if not label.startswith(_only):
        return
    _count += 1
    if _at is not None and _count == _at:
        action = _action or _raise
        action(label)


def _raise(label: str) -> None:
    raise InjectedCrash(f"injected crash at checkpoint {_count}: {label}")


def _exit_now(label: str) -> None:
    os._exit(EXIT_CODE)


def _arm(at: int | None, action: Callable[[str], None] | None, only: str = "") -> None:
    global _at, _action, _count, _only
    _at, _action, _count, _only = at, action, 0, only


@contextmanager
def armed(
    at: int, action: Callable[[str], None] | None = None, only: str = ""
) -> Iterator[None]:
    """In-process: the `at`-th checkpoint from now (of those whose label starts with `only`)
    raises InjectedCrash, or calls `action` instead."""
    _arm(at, action, only)
    try:
        yield
    finally:
        _arm(None, None)


@contextmanager
def counting() -> Iterator[list[str]]:
    """Every checkpoint's label, in order, while the block runs."""
    global _labels
    _arm(None, None)
    _labels = []
    try:
        yield _labels
    finally:
        _labels = None
