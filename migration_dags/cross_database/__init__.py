"""Copying a table from another database into PostgreSQL (the copy_cross_database operation).

    source.py   the other database, through SQLAlchemy, opened read-only: its URL comes from an
                environment variable (never from the file); its keys cut into partitions, its rows
                read one key range at a time
    values.py   what a source value becomes: the column's transform (lower, utc, json), the
                target column's type, the text sent to PostgreSQL, and the canonical text both
                sides of the validation hash
    copier.py   RowCopy, the backfill task's hand-over: the partition plan from the source's keys,
                and each partition copied in batches that upsert into the target and save their
                position in the same transaction
    compare.py  validation: per partition, row count and checksum of the source's rows against
                the target's, naming the key range (and keys) of every partition that differs

The operation itself (its file format, tables and undo) is operations/copy_cross_database.py.
"""
