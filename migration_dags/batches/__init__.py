"""The backfill's machinery: key-range partitions run in batches, resumable, throttled.

    planner.py    the key batches address rows by; a table cut into key-range partitions
    ledger.py     the saved position of a partition, moved only over committed batches
    runner.py     one partition's batches, on one or more connections, retried on lock timeouts
    progress.py   rows done, rate and ETA of a running partition; its result; log lines
    throttle.py   pauses, batch sizes and concurrency driven by what clients and replicas do
"""

# A partition is one key range recorded in the state (state.ranges): the engine and Dagster
# speak of partitions.
from ..state import forget_ranges as forget_partitions
from ..state import ranges_status as partitions_status
from .planner import KeySpec, key_spec, partition_key, plan_partitions
from .progress import BatchProgress, PartitionResult, progress_line, progress_logger
from .runner import run_partition
from .throttle import Throttle, ThrottleSettings, throttle_for

__all__ = [
    "BatchProgress", "KeySpec", "PartitionResult", "forget_partitions", "key_spec",
    "partition_key", "partitions_status", "plan_partitions", "progress_line", "progress_logger",
    "run_partition", "Throttle", "ThrottleSettings", "throttle_for",
]
