-- scimd PostgreSQL layout, version 10: single values on the resource row
-- (scimd_postgres.single).
--
-- The values of single-valued attributes (userName, displayName, externalId, name.*,
-- active, meta.*...: about 13 of the 20 value rows of a typical User) move from
-- scimd_attr_values into one jsonb column, scimd_resources.sv, keyed by path id, with
-- sv_text holding their substring-searchable strings for one trigram index. A bulk import
-- then writes one row per User where it wrote 14 (measured: bench/RESULTS.md).
--
-- The values are computed in Python (casefolding, canonical dateTimes, the schema's
-- shape), so this migration only adds the columns and asks the backend to fill them: the
-- row in scimd_pending_tasks makes `scimd migrate` (or the next start) compute sv and
-- sv_text of every stored resource from its data, delete the value rows they replace and
-- rebuild the indexes (PostgresBackend.backfill_single_values, one transaction). Adding a
-- column with a constant default does not rewrite the table.

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
