-- A seed row that declares only its key columns: insert it when absent, else leave it.
INSERT INTO {table} AS t ({columns})
VALUES ({values})
ON CONFLICT ({key}) DO NOTHING
{returning}
