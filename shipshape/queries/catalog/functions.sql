-- Functions, procedures and aggregates in scope, keyed by name and argument types.
-- pg_get_functiondef cannot print aggregates, so theirs is assembled from pg_aggregate.
SELECT CASE WHEN n.nspname = 'public' THEN p.proname ELSE n.nspname || '.' || p.proname END
           || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS name,
       CASE p.prokind WHEN 'f' THEN 'function' WHEN 'p' THEN 'procedure'
                      WHEN 'a' THEN 'aggregate' WHEN 'w' THEN 'window function' END AS kind,
       CASE WHEN p.prokind = 'a'
            THEN format('AGGREGATE (%%s) RETURNS %%s (SFUNC = %%s, STYPE = %%s, FINALFUNC = %%s, '
                        'COMBINEFUNC = %%s, INITCOND = %%L)',
                        pg_get_function_arguments(p.oid), pg_get_function_result(p.oid),
                        a.aggtransfn, format_type(a.aggtranstype, NULL), a.aggfinalfn,
                        a.aggcombinefn, a.agginitval)
            ELSE pg_get_functiondef(p.oid)
       END AS definition
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
LEFT JOIN pg_aggregate a ON a.aggfnoid = p.oid
WHERE {in_scope}
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
