-- Calls with no answer, and what spend budgets charged (issue 16 follow-up, 2026-11-28).
-- A usage event may now say that the call got no answer after an upstream attempt the
-- upstream may have billed (`no_answer`: its headers never came, its connection was lost,
-- or its 2xx answer broke off; its usage is unknown and sent as zeros), and what the
-- tenant's spend budget charged for the call (`budget_micros`, only for a tenant with a
-- budget). A budget charges more than the priced usage where it must hold and the usage
-- cannot say: a stream cut short is charged its whole max_tokens, a call with no answer
-- its whole reservation. The rollup keeps that excess (held_micros), so `npm run usage`'s
-- budget used is what the budgets charged, not only what the upstream reported.
-- Additive only, like 0002: a ledger Worker of before this file keeps working against it
-- (its rows get NULL, its rollups leave the new counts at 0), so the file is applied
-- before the Workers that use it are deployed (docs/metering.md, "D1 migrations").

-- NULL: the call had an answer (complete or cut: see `ended`).
ALTER TABLE calls ADD COLUMN no_answer TEXT CHECK (no_answer IS NULL OR no_answer IN ('timeout', 'unreachable', 'broke_off'));

-- NULL: no spend budget held a reservation for the call.
ALTER TABLE calls ADD COLUMN budget_micros INTEGER CHECK (budget_micros IS NULL OR budget_micros >= 0);

-- Calls of the day whose `no_answer` is set.
ALTER TABLE usage_daily ADD COLUMN no_answer_calls INTEGER NOT NULL DEFAULT 0;

-- What spend budgets charged the day's calls beyond their priced usage: the sum over
-- calls of max(0, budget_micros - cost_micros).
ALTER TABLE usage_daily ADD COLUMN held_micros INTEGER NOT NULL DEFAULT 0;
