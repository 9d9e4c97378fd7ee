#!/bin/bash
# snap.sh DB OUT: OUT.schema (pg_dump --schema-only without the tool's schemas) and OUT.data (per
# table and materialized view: row count and md5 of its rows as jsonb, column order left out)
set -u
DB=$1; OUT=$2; HOST=${PGHOST:-127.0.0.1}
P="psql -X -q -h $HOST -U postgres -d $DB -At"
pg_dump -h "$HOST" -U postgres -s -N migration_dags -N 'migration_dags*' "$DB" \
  | grep -v '^--' | grep -v '^$' | grep -v 'restrict ' > "$OUT.schema"
$P -c "select c.oid::regclass from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where c.relkind in ('r', 'm') and n.nspname = 'public' order by c.oid::regclass::text" |
while read -r t; do
  if [ "$($P -c "select relispopulated from pg_class where oid = '$t'::regclass")" = t ]; then
    echo "$t $($P -c "select count(*) || ' ' || md5(coalesce(string_agg(to_jsonb(x)::text, E'\n'
                      order by to_jsonb(x)::text), '')) from $t x")"
  else echo "$t unpopulated"; fi
done > "$OUT.data"
