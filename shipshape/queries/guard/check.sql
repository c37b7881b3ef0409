-- The runtime guard's check (guard/install.sql), sent at the end of a watched migration's
-- own message, before its COMMIT.
CALL pg_temp.shipshape_guard_check();
