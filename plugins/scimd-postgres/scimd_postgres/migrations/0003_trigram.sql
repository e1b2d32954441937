-- scimd PostgreSQL layout, version 3: substring search (co / ew, and sw on relation
-- columns) is index-backed. pg_trgm is a trusted extension (PostgreSQL 13+): the database
-- owner may create it; the Debian/Ubuntu packages ship it in postgresql-contrib (bundled).
-- The compiler turns co/ew into LIKE with an escaped pattern, which a trigram GIN index
-- serves; the btree (tenant, rtype, path, v_text) keeps serving eq and sw (a range).

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX scimd_attr_values_trgm ON scimd_attr_values USING gin (v_text gin_trgm_ops);
