"""The views over a table, read from the catalog: which ones, and the statements that re-create
each exactly. Shared by the schema fingerprint (fingerprint.py: a table's proof covers the views
that read it) and by alter_column's carrying of views over its swap (state/saved_views.py).

    dependent_views_sql(table, column)  every view and materialized view reading the column (or,
                      with column None, any column of the table), directly (depth 1) or through
                      views that do (deeper), each at its deepest depth: creating them by depth
                      and dropping them in reverse order respects their dependencies
    statements_sql    for one view (`c`, `n` in scope): the statements re-creating it, in order

The statements cover what pg_dump prints for a view: the definition (pg_get_viewdef) with its
options (security_barrier, security_invoker, check_option: reloptions) and, for a materialized
view, its tablespace and whether it is populated (WITH [NO] DATA); its owner (when not the role
running the statements), grants (table and column ACLs, rebuilt in their order so the ACL reads
the same), comments (the view's and its columns'), column defaults, the indexes of a materialized
view and their comments, INSTEAD OF triggers and rules. Not covered: security labels, extended
statistics, publication membership.

Names print qualified only under an empty search_path, so every statement is read, and must be
run, with `search_path = ''` (state/saved_views.py sets it for both).
"""

from __future__ import annotations

from .identifiers import TableName, literal


def tool_owned_schemas_condition(schema_sql: str) -> str:
    """A condition on a view's schema name: true for views the user owns. The version schemas of
    expand/contract (`<schema>_<migration>`, expand/version_schema.py) are the tool's: their views
    are neither carried over by alter_column nor part of a table's fingerprint."""
    from .expand.version_schema import tool_view_schemas_sql

    return f"{schema_sql} NOT IN ({tool_view_schemas_sql()})"


def dependent_views_sql(table: TableName, column: str | None) -> str:
    """SELECT oid, depth: see the module docstring. The one place that decides which views are
    carried over by alter_column and covered by a table's fingerprint."""
    reg = table.regclass_literal
    on_column = ("AND d.refobjsubid = (SELECT attnum FROM pg_attribute WHERE attrelid = "
                 f"to_regclass({reg}) AND attname = {literal(column)} AND NOT attisdropped)"
                 if column is not None else "")
    return f"""WITH RECURSIVE mdg__deps(oid, depth) AS (
  SELECT r.ev_class, 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
  WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
    AND d.refobjid = to_regclass({reg}) {on_column} AND r.ev_class <> d.refobjid
  UNION
  SELECT r.ev_class, p.depth + 1 FROM mdg__deps p
  JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = p.oid
  JOIN pg_rewrite r ON r.oid = d.objid
  WHERE d.classid = 'pg_rewrite'::regclass AND r.ev_class <> p.oid AND p.depth < 64
)
SELECT v.oid, max(p.depth) AS depth FROM mdg__deps p
JOIN pg_class v ON v.oid = p.oid JOIN pg_namespace vn ON vn.oid = v.relnamespace
WHERE v.relkind IN ('v', 'm') AND {tool_owned_schemas_condition('vn.nspname')}
GROUP BY v.oid"""


def _grants(acl: str, target: str, columns: str = "") -> str:
    """GRANT statements rebuilding `acl` on `target` in its order (one per privilege)."""
    return f"""coalesce((SELECT array_agg(format('GRANT %s%s ON TABLE %s TO %s%s', x.privilege_type,
        {columns or "''"}, {target},
        CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(x.grantee)) END,
        CASE WHEN x.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END) ORDER BY x.ord)
      FROM aclexplode({acl}) WITH ORDINALITY AS x(grantor, grantee, privilege_type, is_grantable, ord)),
      '{{}}')"""


# One view `c` (pg_class) in namespace `n`: its statements, in the order they must run.
STATEMENTS_SQL = f"""(SELECT
  array_remove(ARRAY[
    CASE c.relkind WHEN 'm' THEN format('CREATE MATERIALIZED VIEW %s%s%s AS %s WITH %s', w.qname,
        w.opts, w.space, w.def, CASE WHEN c.relispopulated THEN 'DATA' ELSE 'NO DATA' END)
      ELSE format('CREATE VIEW %s%s AS %s', w.qname, w.opts, w.def) END,
    CASE WHEN c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
      THEN format('ALTER %s %s OWNER TO %I', w.kw, w.qname, pg_get_userbyid(c.relowner)) END,
    CASE WHEN c.relacl IS NOT NULL
      THEN format('REVOKE ALL ON TABLE %s FROM %I', w.qname, pg_get_userbyid(c.relowner)) END
  ], NULL)
  || {_grants('c.relacl', 'w.qname')}
  || array_remove(ARRAY[CASE WHEN obj_description(c.oid, 'pg_class') IS NOT NULL
       THEN format('COMMENT ON %s %s IS %L', w.kw, w.qname, obj_description(c.oid, 'pg_class')) END],
       NULL)
  || coalesce((SELECT array_agg(s ORDER BY a.attnum, k) FROM pg_attribute a
      LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
      CROSS JOIN LATERAL unnest(array_remove(ARRAY[
        CASE WHEN ad.oid IS NOT NULL THEN format('ALTER VIEW %s ALTER COLUMN %I SET DEFAULT %s',
          w.qname, a.attname, pg_get_expr(ad.adbin, ad.adrelid)) END,
        CASE WHEN col_description(c.oid, a.attnum) IS NOT NULL THEN format(
          'COMMENT ON COLUMN %s.%I IS %L', w.qname, a.attname, col_description(c.oid, a.attnum)) END
      ], NULL) || {_grants('a.attacl', 'w.qname', "format(' (%I)', a.attname)")})
        WITH ORDINALITY AS u(s, k)
      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '{{}}')
  || coalesce((SELECT array_agg(s ORDER BY ic.relname, k) FROM pg_index i
      JOIN pg_class ic ON ic.oid = i.indexrelid
      CROSS JOIN LATERAL unnest(array_remove(ARRAY[pg_get_indexdef(i.indexrelid),
        CASE WHEN obj_description(ic.oid, 'pg_class') IS NOT NULL THEN format(
          'COMMENT ON INDEX %I.%I IS %L', n.nspname, ic.relname, obj_description(ic.oid, 'pg_class'))
        END], NULL)) WITH ORDINALITY AS u(s, k)
      WHERE i.indrelid = c.oid), '{{}}')
  || coalesce((SELECT array_agg(pg_get_triggerdef(t.oid) ORDER BY t.tgname) FROM pg_trigger t
      WHERE t.tgrelid = c.oid AND NOT t.tgisinternal), '{{}}')
  || coalesce((SELECT array_agg(rtrim(pg_get_ruledef(r.oid), ';') ORDER BY r.rulename)
      FROM pg_rewrite r WHERE r.ev_class = c.oid AND r.rulename <> '_RETURN'), '{{}}')
  FROM (SELECT format('%I.%I', n.nspname, c.relname) AS qname,
               CASE c.relkind WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'VIEW' END AS kw,
               rtrim(rtrim(pg_get_viewdef(c.oid)), ';') AS def,
               coalesce(' WITH (' || (SELECT string_agg(format('%s=%L', split_part(o, '=', 1),
                   substr(o, strpos(o, '=') + 1)), ', ' ORDER BY i)
                 FROM unnest(c.reloptions) WITH ORDINALITY AS r(o, i)) || ')', '') AS opts,
               coalesce((SELECT ' TABLESPACE ' || quote_ident(spcname) FROM pg_tablespace
                 WHERE oid = c.reltablespace AND c.reltablespace <> 0), '') AS space) w)"""


def views_with_statements_sql(table: TableName, column: str | None) -> str:
    """SELECT schema, name, kind, depth, statements, owner of every dependent view (see above),
    in creation order. Run it under search_path = ''."""
    return f"""SELECT n.nspname, c.relname, c.relkind::text, dv.depth, {STATEMENTS_SQL},
       pg_get_userbyid(c.relowner), pg_relation_size(c.oid)
FROM ({dependent_views_sql(table, column)}) dv
JOIN pg_class c ON c.oid = dv.oid JOIN pg_namespace n ON n.oid = c.relnamespace
ORDER BY dv.depth, n.nspname, c.relname"""
