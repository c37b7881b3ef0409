-- Every column as it is: a history written before the phase and lock_ok columns existed
-- has neither, and read_history reads such rows as expand, accepting no lock finding,
-- until bootstrap (which a refused run never reaches, so that it writes nothing) adds
-- them. (Defaulting them here, through to_jsonb(h), cost 20 ms of server time per 1000
-- rows, on every command that reads the history.)
SELECT * FROM shipshape.history ORDER BY version
