-- scimd PostgreSQL layout, version 4: values of any length are indexed, and bulk loads
-- are cheaper.
--
-- * A btree entry holds at most about 2.7 kB, so the value index and the unique index
--   refused long values (54000). The value index now keys a bounded prefix,
--   left(v_text, 200) (at most 800 bytes in UTF-8), and the compiler rechecks the full
--   value: eq is "prefix = left($1, 200) AND v_text = $1", sw a range on the prefix (plus
--   starts_with for an operand longer than the prefix). The unique index keys
--   md5(v_text), exact up to an MD5 collision (the import's set-based check and
--   create's pre-insert check compare the full value).
-- * The foreign key scimd_attr_values.pk -> scimd_resources.pk cost one trigger call per
--   value row on COPY (about a third of an import's time in the database); the backend
--   deletes a resource's values itself, in the same transaction (backend._delete_tx).

ALTER TABLE scimd_attr_values DROP CONSTRAINT IF EXISTS scimd_attr_values_pk_fkey;

DROP INDEX IF EXISTS scimd_attr_values_text;
CREATE INDEX scimd_attr_values_prefix
    ON scimd_attr_values (tenant, rtype, path, left(v_text, 200));

DROP INDEX IF EXISTS scimd_attr_values_unique;
CREATE UNIQUE INDEX scimd_attr_values_unique
    ON scimd_attr_values (tenant, rtype, path, md5(v_text)) WHERE uniq;
