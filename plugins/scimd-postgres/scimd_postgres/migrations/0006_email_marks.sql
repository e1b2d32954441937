-- scimd PostgreSQL layout, version 6: emails a JIT email change gave a user, unverified for
-- link-by-email (scimd.state.base.EmailMarkStore; docs/jit.md "JIT email changes"). Kept
-- per (tenant, user id, normalised address) until the user is deleted.

CREATE TABLE scimd_jit_email_marks (
    tenant  text COLLATE "C" NOT NULL,
    user_id text COLLATE "C" NOT NULL,
    email   text COLLATE "C" NOT NULL,
    created timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, user_id, email)
);
