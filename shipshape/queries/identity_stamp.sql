INSERT INTO shipshape.environment (name, stamped_by, reason)
VALUES (%(name)s, %(by)s, %(reason)s)
ON CONFLICT (one) DO UPDATE
SET name = EXCLUDED.name, stamped_at = now(), stamped_by = EXCLUDED.stamped_by,
    reason = EXCLUDED.reason
