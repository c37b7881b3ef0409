-- A column type as SQL writes it, for the runtime guard's message; NULL when the type is
-- gone (a domain or an extension's type dropped with the column).
SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_type WHERE oid = %(type)s)
            THEN format_type(%(type)s, %(modifier)s) END
