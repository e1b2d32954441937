-- scimd PostgreSQL layout, version 9: cheaper indexes on scimd_attr_values, for every write
-- and for `scimd import` (PostgreSQL CPU per imported user, COPY of the value rows of
-- 100,000 bench users with the indexes maintained: 94 -> 63 us; bench/RESULTS.md).
--
-- * Value, unique and number indexes lead with the path id and end with tenant and
--   resource type. The equality lookups are the same (every key column is bound), but an
--   insert no longer compares two text columns that are equal in almost every entry
--   before reaching the value. The value index is partial: rows without text (markers
--   of complex values, booleans and numbers) are looked up by resource or in the number
--   index, never by text; they were a quarter of its entries, all duplicates.
-- * The primary key is (pk, path, elem, n): it also serves the per-resource lookups of
--   the former scimd_attr_values_pk index (pk, path, elem), one index less to maintain.
-- * fts: false for the rows of dateTimes, schemas and the server's meta values
--   (scimd_postgres.compiler.searchable_by_substring): the trigram index leaves them out,
--   and co/ew on those attributes read their rows in the value index. Existing rows keep
--   true (they stay indexed, as before).
--
-- Rebuilding these indexes reads the whole table once per index; on a large database run
-- `scimd migrate` before starting the new version.

ALTER TABLE scimd_attr_values DROP CONSTRAINT IF EXISTS scimd_attr_values_pkey;
DROP INDEX IF EXISTS scimd_attr_values_pk;
ALTER TABLE scimd_attr_values
    ADD CONSTRAINT scimd_attr_values_pkey PRIMARY KEY (pk, path, elem, n);

DROP INDEX IF EXISTS scimd_attr_values_prefix;
CREATE INDEX scimd_attr_values_prefix
    ON scimd_attr_values (path, left(v_text, 200), tenant, rtype) WHERE v_text IS NOT NULL;

DROP INDEX IF EXISTS scimd_attr_values_unique;
CREATE UNIQUE INDEX scimd_attr_values_unique
    ON scimd_attr_values (path, md5(v_text), tenant, rtype) WHERE uniq;

DROP INDEX IF EXISTS scimd_attr_values_num;
CREATE INDEX scimd_attr_values_num
    ON scimd_attr_values (path, v_num, tenant, rtype) WHERE v_num IS NOT NULL;

ALTER TABLE scimd_attr_values ADD COLUMN fts boolean NOT NULL DEFAULT true;
DROP INDEX IF EXISTS scimd_attr_values_trgm;
CREATE INDEX scimd_attr_values_trgm
    ON scimd_attr_values USING gin (v_text gin_trgm_ops) WHERE fts;

-- An interrupted bulk import recorded the indexes it dropped (scimd_postgres.bulk): the
-- ones above now exist in their new form, and scimd_attr_values_pk is gone for good.
UPDATE scimd_store_meta
    SET value = (value::jsonb - 'scimd_attr_values_pk' - 'scimd_attr_values_num'
                 - 'scimd_attr_values_trgm' - 'scimd_attr_values_prefix')::text
    WHERE key = 'bulk_import_dropped_indexes';
DELETE FROM scimd_store_meta WHERE key = 'bulk_import_dropped_indexes' AND value = '{}';
