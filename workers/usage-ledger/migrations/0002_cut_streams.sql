-- Streams cut short (issue 16 follow-up, 2026-11-28): a usage event may say why a
-- streamed answer ended before its final usage (`ended`: the client left, the upstream
-- broke, it went silent, or it sent an error event instead of its final usage). Such a
-- call's output_tokens are what the stream reported before the cut, so fewer than were
-- generated: the ledger keeps the reason per call and counts such calls per day, so
-- `npm run usage` can say which costs are lower bounds.
-- Additive only: a ledger Worker of before this file keeps working against it (its rows
-- get NULL and its rollups leave cut_calls as it is), so the file can be applied before
-- the Workers that use it are deployed (docs/metering.md, "D1 migrations").

-- NULL: the call's answer was complete (JSON, or a stream that ended normally).
ALTER TABLE calls ADD COLUMN ended TEXT CHECK (ended IS NULL OR ended IN ('client_closed', 'stream_interrupted', 'stream_idle_timeout', 'upstream_error'));

-- Calls of the day whose `ended` is set.
ALTER TABLE usage_daily ADD COLUMN cut_calls INTEGER NOT NULL DEFAULT 0;
