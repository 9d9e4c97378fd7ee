"""The Dagster wiring: one asset group per migration, its checks, its rollback job, and launching
runs through a Dagster instance. Everything Dagster-specific lives in this package; the engine
and the operations know nothing of it.

    resources.py      MigrationDatabase: which database a migration runs against
    partitions.py     the key ranges' dynamic partitions, kept in step with the engine's key ranges
    key_ranges.py     running key ranges from an asset (backfill, backfill_ranges)
    tagging.py        the tags every run carries, added at run start when its launcher set none
    metadata.py       a StepReport as Dagster metadata
    checks.py         validation outcomes as blocking asset checks, and the suites seam
    assets.py         backup -> schema_change -> backfill -> validation -> cutover (one group, no
                      partitions), and backfill_ranges (one partition per key range)
    jobs.py           <migration>__rollback: the down steps in reverse
    rollback_policy.py  "validation failed -> roll back", shared by the CLI and a future sensor
    definitions.py    one Definitions for every migration in the folder (`defs` for workspace.yaml)
    launch.py         run_up / run_down: the CLI's runs, recorded in the instance's run history
"""
