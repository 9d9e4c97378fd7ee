"""The backfill's machinery: key-range partitions run in batches, resumable, throttled.

    planner.py    the key batches address rows by; a table cut into key-range partitions
    runner.py     one partition's batches, each committing its saved position; their session
                  settings (batch_settings) and the step's one synchronous commit (make_durable)
    progress.py   rows done, rate and ETA of a running partition; its result; log lines, a bar
    throttle.py   pauses on the signals that matter: lock waiters, long transactions, lag
"""

# A partition is one key range recorded in the state (state.ranges): the engine and Dagster
# speak of partitions.
from ..state import forget_ranges as forget_partitions
from ..state import ranges_status as partitions_status
from .planner import KeySpec, key_spec, partition_key, plan_partitions
from .progress import (
    BatchProgress, PartitionResult, both, progress_line, progress_logger, terminal_progress,
)
from .runner import BATCH_LOCK_TIMEOUT_MS, batch_settings, make_durable, run_partition
from .throttle import Throttle, ThrottleSettings, throttle_for

__all__ = [
    "BATCH_LOCK_TIMEOUT_MS", "batch_settings", "both", "make_durable", "terminal_progress",
    "BatchProgress", "KeySpec", "PartitionResult", "forget_partitions", "key_spec",
    "partition_key", "partitions_status", "plan_partitions", "progress_line", "progress_logger",
    "run_partition", "Throttle", "ThrottleSettings", "throttle_for",
]
