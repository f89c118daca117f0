-- Calls with no answer, and what spend budgets charged (issue 16 follow-up, 2026-11-28).
-- A usage event may now say that the call got no answer after an upstream attempt the
-- upstream may have billed (`no_answer`: its headers never came, its connection was lost,
-- or its 2xx answer broke off; its usage is unknown and sent as zeros), and what the
-- tenant's spend budget charged for the call (`budget_micros`, only for a tenant with a
-- budget). A budget charges more than the priced usage where it must hold and the usage
-- cannot say: a stream cut short is charged its whole max_tokens, a call with no answer
-- its whole reservation. The rollup keeps the difference (held_micros), so `npm run usage`'s
-- budget used is what the budgets charged, not only what the upstream reported. And how
-- many attempts of a call the proxy retried after the upstream may have billed them
-- (`maybe_billed_attempts`: Anthropic reported no usage for them), so the report can say
-- how much of what Anthropic bills may be missing from the ledger.
-- Additive only, like 0002: a ledger Worker of before this file keeps working against it
-- (its rows get NULL, its rollups leave the new counts at 0), so the file is applied
-- before the Workers that use it are deployed (docs/metering.md, "D1 migrations").

-- NULL: the call had an answer (complete or cut: see `ended`).
ALTER TABLE calls ADD COLUMN no_answer TEXT CHECK (no_answer IS NULL OR no_answer IN ('timeout', 'unreachable', 'broke_off'));

-- NULL: no spend budget held a reservation for the call.
ALTER TABLE calls ADD COLUMN budget_micros INTEGER CHECK (budget_micros IS NULL OR budget_micros >= 0);

-- Retried attempts of the call that the upstream may have billed (0: none).
ALTER TABLE calls ADD COLUMN maybe_billed_attempts INTEGER NOT NULL DEFAULT 0 CHECK (maybe_billed_attempts >= 0);

-- Calls of the day whose `no_answer` is set.
ALTER TABLE usage_daily ADD COLUMN no_answer_calls INTEGER NOT NULL DEFAULT 0;

-- What spend budgets charged the day's calls minus their priced usage: the sum over calls
-- of budget_micros - cost_micros (0 without a budget). Usually >= 0 (a cut stream's
-- max_tokens, a call with no answer's reservation); negative where a budget charged less
-- (the proxy priced with other prices, or the requested model where the answer named
-- none). So cost_micros + held_micros is what the budgets charged.
ALTER TABLE usage_daily ADD COLUMN held_micros INTEGER NOT NULL DEFAULT 0;

-- The day's calls' maybe_billed_attempts, summed.
ALTER TABLE usage_daily ADD COLUMN maybe_billed_attempts INTEGER NOT NULL DEFAULT 0;
