-- Per-type resource counts kept by triggers, so that an unfiltered list (index or cursor
-- page) reads its exact totalResults from a few rows instead of counting every resource
-- (count(*) took ~180 ms per page at 1,000,000 users).
--
-- Statement-level triggers with transition tables fire once per INSERT, DELETE or COPY
-- statement. The count is spread over 8 shard rows per (tenant, rtype), chosen by the
-- writing backend's pid, so that concurrent writers rarely wait on the same row; readers
-- add the shards up. Being written in the writer's transaction, the counts are exactly as
-- consistent as the rows: a REPEATABLE READ reader sees both from one snapshot.

-- No writer may slip between the backfill and the triggers.
LOCK TABLE scimd_resources IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE scimd_resource_counts (
    tenant text COLLATE "C" NOT NULL,
    rtype  text COLLATE "C" NOT NULL,
    shard  smallint NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (tenant, rtype, shard)
);

CREATE FUNCTION scimd_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO scimd_resource_counts AS c (tenant, rtype, shard, n)
    SELECT tenant, rtype, (pg_backend_pid() % 8)::smallint, count(*) FROM inserted
    GROUP BY tenant, rtype
    ON CONFLICT (tenant, rtype, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

CREATE FUNCTION scimd_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO scimd_resource_counts AS c (tenant, rtype, shard, n)
    SELECT tenant, rtype, (pg_backend_pid() % 8)::smallint, -count(*) FROM deleted
    GROUP BY tenant, rtype
    ON CONFLICT (tenant, rtype, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

CREATE TRIGGER scimd_resources_count_insert AFTER INSERT ON scimd_resources
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
    EXECUTE FUNCTION scimd_count_inserted();

CREATE TRIGGER scimd_resources_count_delete AFTER DELETE ON scimd_resources
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT
    EXECUTE FUNCTION scimd_count_deleted();

INSERT INTO scimd_resource_counts (tenant, rtype, shard, n)
SELECT tenant, rtype, 0, count(*) FROM scimd_resources GROUP BY tenant, rtype;
