-- scimd PostgreSQL layout, version 2: the state store (scimd_postgres.state) in the same
-- database, shared by every scimd process: tokens (SHA-256 only), the event log, server
-- secrets, and the JIT hook's identity links, tombstones, replay and idempotency caches.

CREATE TABLE scimd_state_tokens (
    id          text COLLATE "C" PRIMARY KEY,
    hash        bytea NOT NULL UNIQUE,
    tenant      text COLLATE "C" NOT NULL,
    scopes      text NOT NULL,
    description text NOT NULL DEFAULT '',
    me_user_id  text,
    created     timestamptz NOT NULL,
    revoked     timestamptz,
    last_used   timestamptz
);
CREATE INDEX scimd_state_tokens_tenant ON scimd_state_tokens (tenant);

CREATE TABLE scimd_state_events (
    seq           bigserial PRIMARY KEY,
    id            text COLLATE "C" NOT NULL UNIQUE,
    type          text COLLATE "C" NOT NULL,
    time          timestamptz NOT NULL,
    tenant        text COLLATE "C" NOT NULL,
    resource_type text COLLATE "C",
    resource_id   text COLLATE "C",
    actor         text,
    request_id    text,
    changed       jsonb NOT NULL DEFAULT '[]',
    data          jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX scimd_state_events_tenant_time ON scimd_state_events (tenant, time);
CREATE INDEX scimd_state_events_time ON scimd_state_events (time);
CREATE INDEX scimd_state_events_resource ON scimd_state_events (resource_id);
CREATE INDEX scimd_state_events_type ON scimd_state_events (type);

CREATE TABLE scimd_state_kv (
    name    text COLLATE "C" PRIMARY KEY,
    value   bytea NOT NULL,
    created timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE scimd_jit_links (
    tenant  text COLLATE "C" NOT NULL,
    idp     text COLLATE "C" NOT NULL,
    subject text COLLATE "C" NOT NULL,
    user_id text COLLATE "C" NOT NULL,
    created timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, idp, subject)
);
CREATE INDEX scimd_jit_links_user ON scimd_jit_links (tenant, user_id);

CREATE TABLE scimd_jit_tombstones (
    tenant  text COLLATE "C" NOT NULL,
    key     text COLLATE "C" NOT NULL,
    user_id text COLLATE "C" NOT NULL,
    deleted timestamptz NOT NULL,
    PRIMARY KEY (tenant, key)
);
CREATE INDEX scimd_jit_tombstones_user ON scimd_jit_tombstones (tenant, user_id);

CREATE TABLE scimd_jit_replay (
    key     text COLLATE "C" PRIMARY KEY,
    expires timestamptz NOT NULL
);
CREATE INDEX scimd_jit_replay_expires ON scimd_jit_replay (expires);

CREATE TABLE scimd_jit_idempotency (
    caller      text COLLATE "C" NOT NULL,
    key         text COLLATE "C" NOT NULL,
    body_sha256 text NOT NULL,
    status      integer NOT NULL,
    response    bytea NOT NULL,
    expires     timestamptz NOT NULL,
    PRIMARY KEY (caller, key)
);
CREATE INDEX scimd_jit_idempotency_expires ON scimd_jit_idempotency (expires);
