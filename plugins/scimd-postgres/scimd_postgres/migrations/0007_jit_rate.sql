-- JIT rate-limit token buckets shared by every scimd process on this database
-- (jit.rate_limit / jit.rate_burst per caller and per IdP).
CREATE TABLE scimd_jit_rate (
    key     text PRIMARY KEY,
    tokens  double precision NOT NULL,
    updated double precision NOT NULL  -- Unix time of the last take
);
