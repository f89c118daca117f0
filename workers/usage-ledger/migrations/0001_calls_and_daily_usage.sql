-- The usage ledger: one row per call, and one rollup row per (UTC day, tenant, model).
-- Applied by `wrangler d1 migrations apply` (docs/metering.md); wrangler records each
-- file it applied in the d1_migrations table, so a file is never run twice: never edit
-- an applied file, add the next one.

-- One row per call. request_id is the idempotency key: Queues deliver at least once.
-- ingest_id is a random id per delivery attempt: the rollup statement in the same
-- transaction adds a call to its day only when this very delivery inserted the row.
CREATE TABLE calls (
  request_id            TEXT PRIMARY KEY,
  ts                    INTEGER NOT NULL,   -- ms since the epoch, when the call ended
  day                   TEXT NOT NULL,      -- YYYY-MM-DD (UTC) of ts
  tenant                TEXT NOT NULL,
  model                 TEXT NOT NULL,
  status                INTEGER NOT NULL,
  input_tokens          INTEGER NOT NULL CHECK (input_tokens >= 0),
  cache_write_5m_tokens INTEGER NOT NULL CHECK (cache_write_5m_tokens >= 0),
  cache_write_1h_tokens INTEGER NOT NULL CHECK (cache_write_1h_tokens >= 0),
  cache_read_tokens     INTEGER NOT NULL CHECK (cache_read_tokens >= 0),
  output_tokens         INTEGER NOT NULL CHECK (output_tokens >= 0),
  cost_micros           INTEGER NOT NULL CHECK (cost_micros >= 0),
  priced_as             TEXT NOT NULL,      -- the price table's model id, or '*unknown*'
  price_as_of           TEXT NOT NULL,      -- the price table's as_of
  ingest_id             TEXT NOT NULL,
  ingested_at           INTEGER NOT NULL
) STRICT;

-- Retention deletes by age.
CREATE INDEX calls_by_ts ON calls (ts);

CREATE TABLE usage_daily (
  day                   TEXT NOT NULL,
  tenant                TEXT NOT NULL,
  model                 TEXT NOT NULL,
  calls                 INTEGER NOT NULL,
  input_tokens          INTEGER NOT NULL,
  cache_write_5m_tokens INTEGER NOT NULL,
  cache_write_1h_tokens INTEGER NOT NULL,
  cache_read_tokens     INTEGER NOT NULL,
  output_tokens         INTEGER NOT NULL,
  cost_micros           INTEGER NOT NULL,
  unknown_model_calls   INTEGER NOT NULL,   -- calls priced by the unknown-model rule
  PRIMARY KEY (day, tenant, model)
) STRICT;
