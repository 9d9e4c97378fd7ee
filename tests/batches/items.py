"""An `items` table, a migration that fills a label column over it, and the same change made by
one plain UPDATE in `reference`, to compare the backfill's result with."""

from __future__ import annotations

import textwrap

from migration_dags.state import STATE_SCHEMA

UP = "coalesce(note, 'none') || ':' || coalesce((qty * 2)::text, '-')"


def migration_file(folder, table="items", batch_size=50, partition_rows=400, up=UP, pause_ms=0):
    path = folder / "fill_label.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: fill_label
        tables: [{table}]
        settings: {{batch_size: {batch_size}, partition_rows: {partition_rows}, batch_pause_ms: {pause_ms}}}
        operations:
          - add_column:
              table: {table}
              column: {{name: label, type: text, nullable: false}}
              up: "{up}"
        """))
    return path


def seed_items(conn, rows=2000, key="id int PRIMARY KEY", key_expr="g"):
    conn.execute(f"CREATE TABLE items ({key}, note text, qty int)")
    conn.execute(
        f"""INSERT INTO items SELECT {key_expr}, CASE WHEN g %% 3 = 0 THEN NULL ELSE 'n' || g END,
            CASE WHEN g %% 5 = 0 THEN NULL ELSE g END FROM generate_series(1, %s) g""",
        (rows,),
    )
    # the reference: the same change made by one plain UPDATE
    conn.execute("CREATE TABLE reference AS SELECT * FROM items")
    conn.execute(f"ALTER TABLE reference ADD COLUMN label text")
    conn.execute(f"UPDATE reference SET label = {UP}")


def differences(conn, key_cols="id"):
    return conn.execute(
        f"""SELECT count(*) FROM (
              (SELECT {key_cols}, note, qty, label FROM items EXCEPT ALL
               SELECT {key_cols}, note, qty, label FROM reference)
              UNION ALL
              (SELECT {key_cols}, note, qty, label FROM reference EXCEPT ALL
               SELECT {key_cols}, note, qty, label FROM items)) d"""
    ).fetchone()[0]


def rows_done(conn):
    return conn.execute(
        f"SELECT coalesce(sum(rows_done), 0) FROM {STATE_SCHEMA}.backfill_ranges"
    ).fetchone()[0]
