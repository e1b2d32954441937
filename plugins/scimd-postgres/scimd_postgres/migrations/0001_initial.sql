-- scimd PostgreSQL layout, version 1: resources, filterable values, membership.
-- Text columns use the "C" collation: comparisons and ORDER BY are by code point, as in
-- scimd.query.evaluate and scimd.query.sort.

CREATE TABLE scimd_resources (
    pk           bigserial PRIMARY KEY,
    tenant       text COLLATE "C" NOT NULL,
    rtype        text COLLATE "C" NOT NULL,
    id           text COLLATE "C" NOT NULL,
    version      bigint NOT NULL,
    display      text COLLATE "C",
    display_fold text COLLATE "C",
    data         jsonb NOT NULL,
    CONSTRAINT scimd_resources_id UNIQUE (tenant, rtype, id)
);

CREATE TABLE scimd_attr_paths (
    id  serial PRIMARY KEY,
    key text COLLATE "C" NOT NULL UNIQUE
);

-- One row per filterable leaf value (v_text casefolded unless caseExact, dateTimes in the
-- canonical UTC form; v_num for numbers and booleans 0/1) and one marker row per complex
-- value (v_num = 1 when it has a present leaf). Rows of one element share "elem".
CREATE TABLE scimd_attr_values (
    pk     bigint NOT NULL REFERENCES scimd_resources (pk) ON DELETE CASCADE,
    n      integer NOT NULL,
    tenant text COLLATE "C" NOT NULL,
    rtype  text COLLATE "C" NOT NULL,
    path   integer NOT NULL,
    elem   integer NOT NULL,
    v_text text COLLATE "C",
    v_num  numeric,
    uniq   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (pk, n)
);
CREATE INDEX scimd_attr_values_pk ON scimd_attr_values (pk, path, elem);
CREATE INDEX scimd_attr_values_text ON scimd_attr_values (tenant, rtype, path, v_text);
CREATE INDEX scimd_attr_values_num ON scimd_attr_values (tenant, rtype, path, v_num)
    WHERE v_num IS NOT NULL;
-- uniqueness: server (userName casefolded, Group displayName...) per tenant and type.
CREATE UNIQUE INDEX scimd_attr_values_unique ON scimd_attr_values (tenant, rtype, path, v_text)
    WHERE uniq;

CREATE TABLE scimd_members (
    tenant       text COLLATE "C" NOT NULL,
    grtype       text COLLATE "C" NOT NULL,
    group_id     text COLLATE "C" NOT NULL,
    member_id    text COLLATE "C" NOT NULL,
    member_type  text COLLATE "C",
    member_type_fold text COLLATE "C",
    display      text COLLATE "C",
    display_fold text COLLATE "C",
    PRIMARY KEY (tenant, group_id, member_id)
);
CREATE INDEX scimd_members_member ON scimd_members (tenant, member_id);

CREATE TABLE scimd_store_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
