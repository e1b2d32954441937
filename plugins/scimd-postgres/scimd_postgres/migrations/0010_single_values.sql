-- scimd PostgreSQL layout, version 10: the filterable values on the resource row
-- (scimd_postgres.single).
--
-- Every filterable value of a resource moves from scimd_attr_values into one jsonb column,
-- scimd_resources.sv, keyed by path id and shaped like the resource, with sv_text holding
-- its substring-searchable strings for one trigram index. scimd_attr_values keeps only the
-- unique values (userName, Group displayName...) for its unique index: a bulk import
-- writes two rows per User where it wrote 21 (measured: bench/RESULTS.md).
--
-- The values are computed in Python (casefolding, canonical dateTimes, the schema's
-- shape), so this migration adds the columns and asks the backend to fill them: the row in
-- scimd_pending_tasks makes `scimd migrate` (or the next start) compute sv and sv_text of
-- every stored resource from its data, delete the value rows they replace and rebuild the
-- indexes (PostgresBackend.backfill_single_values, one transaction). Adding a column with
-- a constant default does not rewrite the table.

ALTER TABLE scimd_resources
    ADD COLUMN sv jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN sv_text text COLLATE "C" NOT NULL DEFAULT '';
INSERT INTO scimd_pending_tasks (name) VALUES ('single_values_backfill');

-- The indexes on them (scimd_postgres.single.SV_INDEXES; the backfill drops them while it
-- fills the columns and creates them again after).
CREATE INDEX scimd_resources_sv ON scimd_resources USING gin (sv jsonb_path_ops)
    WITH (fastupdate = off);
CREATE INDEX scimd_resources_sv_trgm ON scimd_resources USING gin (sv_text gin_trgm_ops)
    WITH (fastupdate = off);

-- The value indexes served the filters, which now read sv: the primary key (pk, path,
-- elem, n) and the unique index stay. A bulk import interrupted under layout 9 recorded
-- the trigram index dropped here for good.
DROP INDEX IF EXISTS scimd_attr_values_prefix;
DROP INDEX IF EXISTS scimd_attr_values_num;
DROP INDEX IF EXISTS scimd_attr_values_trgm;
DELETE FROM scimd_store_meta WHERE key = 'bulk_import_dropped_indexes';
