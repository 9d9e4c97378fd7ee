"""The backfill's machinery: key-range partitions run in batches, resumable, throttled.

    runner.py     partitions planned over the key, batches run, the saved position (ledger)
    throttle.py   pauses, batch sizes and concurrency driven by what clients and replicas do
"""

from .runner import (
    BatchProgress,
    KeySpec,
    PartitionResult,
    forget_partitions,
    key_spec,
    partition_key,
    partitions_status,
    plan_partitions,
    progress_line,
    progress_logger,
    run_partition,
    throttle_for,
)

__all__ = [
    "BatchProgress", "KeySpec", "PartitionResult", "forget_partitions", "key_spec",
    "partition_key", "partitions_status", "plan_partitions", "progress_line", "progress_logger",
    "run_partition", "throttle_for",
]
