-- The runtime guard's check (shipshape/engine/guard.py), a procedure of this session only
-- (pg_temp: nothing is created in the database's schemas, and it is gone with the
-- session). The engine calls it at the end of each watched migration's own message,
-- after the migration's SQL and its history row and before COMMIT, so that watching
-- costs no round trip: when it raises, PostgreSQL skips the rest of the message, the
-- COMMIT with it, and the engine rolls the transaction back.
--
-- What it compares: the relations this transaction locked in a mode that changes rows
-- or the relation itself, against the session's snapshot (guard/snapshot.sql).
-- PostgreSQL locks every relation a statement creates, drops, alters, deletes from or
-- truncates, whoever issues it (a trigger, a function defined outside the tree, dynamic
-- SQL): ROW EXCLUSIVE to write rows (INSERT, UPDATE, DELETE, MERGE), ACCESS EXCLUSIVE to
-- create, drop, alter, truncate or rewrite, EXCLUSIVE to refresh a materialized view
-- concurrently. The modes in between build indexes, triggers and constraints, and
-- ACCESS SHARE reads: a relation only read or referenced is not looked at. Oids below
-- 16384 are the system's own. A dropped relation keeps its lock and has no pg_class row
-- any more. Lost, for a
-- relation that existed before: the relation itself; a column (its number gone, or its
-- type changed); rows deleted (this backend's count went up); or its storage replaced
-- and empty, where it held rows (TRUNCATE, or a rewrite). Then the snapshot is updated
-- with what the migration touched, for the next migration of the run.
--
-- It raises SQLSTATE SSG01 with one line per loss in DETAIL; the engine turns that into
-- its refusal (exit 3). search_path is fixed, so that a migration's own SET cannot
-- change what an operator or a function name in here means.
CREATE OR REPLACE PROCEDURE pg_temp.shipshape_guard_check()
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $check$
DECLARE
    lost pg_temp.shipshape_guard[];
    was pg_temp.shipshape_guard;
    what text;
    lines text[] := '{}';
BEGIN
    WITH touched AS MATERIALIZED (
        SELECT l.oid,
               c.oid IS NOT NULL AS present,
               CASE WHEN c.oid IS NOT NULL THEN format('%I.%I', n.nspname, c.relname) END AS name,
               c.relkind AS kind,
               c.relfilenode AS filenode,
               CASE WHEN c.relkind IN ('r', 'm') THEN pg_relation_size(c.oid) > 0
                    ELSE pg_stat_get_live_tuples(c.oid) > 0 END AS has_rows,
               pg_stat_get_xact_tuples_deleted(l.oid) AS deleted,
               coalesce(col.types, '{}') AS types,
               coalesce(col.names, '{}') AS names
        FROM (SELECT DISTINCT relation AS oid
              FROM pg_locks
              WHERE pid = pg_backend_pid() AND locktype = 'relation' AND relation >= 16384
                AND mode IN ('RowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')) l
        LEFT JOIN pg_class c ON c.oid = l.oid
        LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN LATERAL (
            SELECT array_agg(concat_ws(':', a.attnum, a.atttypid, a.atttypmod) ORDER BY a.attnum) AS types,
                   array_agg(a.attname::text ORDER BY a.attnum) AS names
            FROM pg_attribute a
            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) col ON true
        WHERE c.oid IS NULL
           OR (c.relkind IN ('r', 'p', 'f', 'v', 'm')
               AND n.nspname NOT IN ('information_schema', 'shipshape')
               AND n.nspname NOT LIKE 'pg\_toast%'
               AND n.nspname NOT LIKE 'pg\_temp\_%')
    ),
    gone AS (
        DELETE FROM pg_temp.shipshape_guard g
        USING touched t
        WHERE g.oid = t.oid AND NOT t.present
    ),
    kept AS (
        INSERT INTO pg_temp.shipshape_guard AS g
        SELECT oid, name, kind, filenode, has_rows, deleted, types, names
        FROM touched
        WHERE present
        ON CONFLICT (oid) DO UPDATE
        SET name = EXCLUDED.name, kind = EXCLUDED.kind, filenode = EXCLUDED.filenode,
            has_rows = EXCLUDED.has_rows, deleted = EXCLUDED.deleted,
            types = EXCLUDED.types, names = EXCLUDED.names
        WHERE (g.name, g.kind, g.filenode, g.has_rows, g.deleted, g.types, g.names)
              IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.kind, EXCLUDED.filenode,
                                EXCLUDED.has_rows, EXCLUDED.deleted, EXCLUDED.types,
                                EXCLUDED.names)
    )
    -- The statement sees the snapshot as it was before its own DELETE and INSERT: b is
    -- the relation before the migration.
    SELECT array_agg(b ORDER BY b.name) INTO lost
    FROM touched t
    JOIN pg_temp.shipshape_guard b ON b.oid = t.oid
    WHERE NOT t.present
       OR NOT b.types <@ t.types
       OR t.deleted > b.deleted
       OR (t.filenode <> b.filenode AND NOT t.has_rows AND b.has_rows);

    IF lost IS NULL THEN
        RETURN;
    END IF;

    -- Only when something was lost: say what, one line per object.
    FOREACH was IN ARRAY lost LOOP
        what := CASE was.kind WHEN 'f' THEN 'foreign table' WHEN 'v' THEN 'view'
                              WHEN 'm' THEN 'materialized view' ELSE 'table' END;
        IF NOT EXISTS (SELECT FROM pg_class WHERE oid = was.oid) THEN
            lines := lines || format('dropped %s %s', what, was.name);
            CONTINUE;
        END IF;
        lines := lines || ARRAY(
            SELECT CASE WHEN a.attnum IS NULL
                        THEN format('dropped column %s.%s (%s)', was.name, o.name,
                                    pg_temp.shipshape_guard_type(o.type, o.modifier))
                        ELSE format('changed the type of column %s.%s from %s to %s',
                                    was.name, a.attname,
                                    pg_temp.shipshape_guard_type(o.type, o.modifier),
                                    format_type(a.atttypid, a.atttypmod)) END
            FROM (SELECT split_part(entry, ':', 1)::int2 AS number,
                         split_part(entry, ':', 2)::oid AS type,
                         split_part(entry, ':', 3)::int4 AS modifier,
                         name, position
                  FROM unnest(was.types, was.names) WITH ORDINALITY AS e(entry, name, position)) o
            LEFT JOIN pg_attribute a
                   ON a.attrelid = was.oid AND a.attnum = o.number AND NOT a.attisdropped
            WHERE a.attnum IS NULL OR (a.atttypid, a.atttypmod) <> (o.type, o.modifier)
            ORDER BY o.position);
        IF pg_stat_get_xact_tuples_deleted(was.oid) > was.deleted THEN
            lines := lines || format('deleted %s row(s) from %s %s',
                                     pg_stat_get_xact_tuples_deleted(was.oid) - was.deleted,
                                     what, was.name);
        ELSIF (SELECT relfilenode FROM pg_class WHERE oid = was.oid) <> was.filenode
              AND was.has_rows
              AND NOT (SELECT CASE WHEN relkind IN ('r', 'm') THEN pg_relation_size(oid) > 0
                                   ELSE pg_stat_get_live_tuples(oid) > 0 END
                       FROM pg_class WHERE oid = was.oid) THEN
            lines := lines || format('emptied %s %s: its storage was replaced and holds no '
                                     'rows (TRUNCATE, or a rewrite)', what, was.name);
        END IF;
    END LOOP;
    RAISE EXCEPTION 'the runtime guard refused an undeclared loss'
        USING ERRCODE = 'SSG01', DETAIL = array_to_string(lines, E'\n');
END
$check$;

-- A column type as SQL writes it, for the check's message; a type dropped with the column
-- (a domain, an extension's type) has no name left.
CREATE OR REPLACE FUNCTION pg_temp.shipshape_guard_type(type oid, modifier int4) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $type$
    SELECT CASE WHEN EXISTS (SELECT FROM pg_type WHERE oid = type)
                THEN format_type(type, modifier)
                ELSE format('type %s, dropped with it', type) END
$type$;
