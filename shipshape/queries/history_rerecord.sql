-- An applied migration whose file was edited afterwards, re-recorded with the edited
-- file's checksums (shipshape/engine/history.py, runbook edited-migration) once a shadow
-- database built from the edited files proved the schema unchanged. applied_at stays the
-- time it ran; applied_by keeps who ran it and adds who re-recorded it, and why.
UPDATE shipshape.history
SET name = {name}, checksum = {checksum}, source_checksum = {source_checksum},
    applied_by = applied_by || {note}
WHERE version = {version} AND success
