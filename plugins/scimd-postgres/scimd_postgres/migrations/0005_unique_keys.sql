-- scimd PostgreSQL layout, version 5: derived unique keys (scimd.store.unique_keys), today
-- the normalised primary email of a User (docs/jit.md "Email as the primary identifier").
--
-- Every stored User has its key here, written in the resource's own write transaction.
-- The partial unique index is the constraint: one non-shared holder per (tenant, kind,
-- key), so two scimd processes cannot both create the same person (one commits, the
-- other's insert is a unique violation, a 409). Keys of legacy duplicates (data stored
-- before, or while scim.unique_email was off, or by `scimd import`) are *shared*: outside
-- the index, so those users stay editable as long as they keep the key.
--
-- The keys of the users already stored cannot be computed in SQL (the normalisation is
-- scimd.jit.email: Unicode, IDNA); the row in scimd_pending_tasks makes the backend fill
-- them at its next `scimd migrate` or start (PostgresBackend.backfill_unique_keys: in pk
-- order the oldest holder owns a key, the later ones share it).

CREATE TABLE scimd_unique_keys (
    pk     bigint NOT NULL,
    tenant text COLLATE "C" NOT NULL,
    kind   text COLLATE "C" NOT NULL,
    key    text COLLATE "C" NOT NULL,
    shared boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX scimd_unique_keys_key ON scimd_unique_keys (tenant, kind, key)
    WHERE NOT shared;
CREATE INDEX scimd_unique_keys_all ON scimd_unique_keys (tenant, kind, key, pk);
CREATE INDEX scimd_unique_keys_pk ON scimd_unique_keys (pk);

CREATE TABLE scimd_pending_tasks (
    name text COLLATE "C" PRIMARY KEY
);
INSERT INTO scimd_pending_tasks (name) VALUES ('unique_keys_backfill');
