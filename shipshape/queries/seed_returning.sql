-- Appended to the seed upserts by apply (not by the psql script): one row per inserted
-- or updated row; xmax = 0 marks a freshly inserted row version.
RETURNING (t.xmax = 0) AS inserted
