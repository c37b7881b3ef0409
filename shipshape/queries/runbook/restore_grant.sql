GRANT {privileges} ON {table} TO {grantee}
