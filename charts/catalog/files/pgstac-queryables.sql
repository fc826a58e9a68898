-- Queryables every fedeploy catalog registers after pgstac's migrations (idempotent).
-- `updated` as a timestamp lets the hub harvest a site incrementally: filter and sort on it.
SET search_path TO pgstac, public;
INSERT INTO queryables (name, definition, property_wrapper, property_index_type)
SELECT 'updated',
       '{"type": "string", "format": "date-time", "title": "Last update of the item"}',
       'to_tstz', 'BTREE'
WHERE NOT EXISTS (SELECT 1 FROM queryables WHERE name = 'updated');
