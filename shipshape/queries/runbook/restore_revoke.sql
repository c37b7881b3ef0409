-- A grantee's privileges on a relation, reset before they are granted as the migrations do.
REVOKE ALL ON {table} FROM {grantee}
