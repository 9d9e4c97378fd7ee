"""The Dagster wiring: one asset group per migration, its checks, its rollback job, and launching
runs through a Dagster instance. Everything Dagster-specific lives in this package; the engine
and the operations know nothing of it.

    resources.py      MigrationDatabase: which database a migration runs against
    partitions.py     the backfill's dynamic partitions, kept in step with the engine's key ranges
    metadata.py       a StepReport as Dagster metadata
    checks.py         validation outcomes as blocking asset checks, and the suites seam
    assets.py         backup -> schema_change -> backfill -> validation -> cutover
    jobs.py           <migration>__rollback: the down steps in reverse
    rollback_policy.py  "validation failed -> roll back", shared by the CLI and a future sensor
    definitions.py    one Definitions for every migration in the folder (`defs` for workspace.yaml)
    launch.py         run_up / run_down: the CLI's runs, recorded in the instance's run history
"""
