-- Whether every value of type {have} is a value of type {want} without conversion: the
-- server's own cast catalog (castmethod 'b', binary coercible, as varchar -> text). Both
-- are type names as format_type prints them; a length limit (typmod) is compared apart.
SELECT EXISTS (
    SELECT 1 FROM pg_cast
    WHERE castsource = %(have)s::regtype AND casttarget = %(want)s::regtype
      AND castmethod = 'b'
) OR %(have)s::regtype = %(want)s::regtype AS coercible
