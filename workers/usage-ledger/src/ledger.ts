// The ledger's D1 statements: a call row inserted at most once per request id, and the
// day's rollup advanced only by the delivery that inserted it. Used by the queue handler.
import { costMicros, lookupPrice, tokensOf, UNKNOWN_MODEL, type PriceTable } from "../../shared/pricing.ts";
import type { UsageEvent } from "../../shared/usage-event.ts";
import { DAY_MS } from "./check.ts";

// The rule for what can be recorded lives in check.ts (also read by npm run dead-letters).
export { checkEvent, type Verdict } from "./check.ts";

export function utcDay(ts: number): string {
  return new Date(ts).toISOString().slice(0, 10);
}

const INSERT_CALL = `INSERT INTO calls (request_id, ts, day, tenant, model, status, input_tokens, cache_write_5m_tokens,
  cache_write_1h_tokens, cache_read_tokens, output_tokens, cost_micros, priced_as, price_as_of, ingest_id, ingested_at, ended,
  no_answer, budget_micros, maybe_billed_attempts)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)
ON CONFLICT (request_id) DO NOTHING`;

// Adds the call to its day only if this delivery inserted it: a redelivery's INSERT did
// nothing, so the row's ingest_id is the first delivery's and this selects no row.
// A call with no answer has no tokens and no model the upstream reported: it is not
// counted as priced by the unknown-model rule (its cost is 0 whatever the rule). What a
// budget charged minus the priced usage is held_micros (signed: a budget that priced with
// other prices, or the requested model where the answer named none, can charge less), so
// cost_micros + held_micros is exactly what the budgets charged; retried attempts that may
// have been billed are maybe_billed_attempts (migration 0003).
const ADD_TO_DAY = `INSERT INTO usage_daily (day, tenant, model, calls, input_tokens, cache_write_5m_tokens,
  cache_write_1h_tokens, cache_read_tokens, output_tokens, cost_micros, unknown_model_calls, cut_calls,
  no_answer_calls, held_micros, maybe_billed_attempts)
SELECT day, tenant, model, 1, input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens,
  output_tokens, cost_micros, priced_as = '${UNKNOWN_MODEL}' AND no_answer IS NULL, ended IS NOT NULL,
  no_answer IS NOT NULL, COALESCE(budget_micros, cost_micros) - cost_micros, maybe_billed_attempts
FROM calls WHERE request_id = ?1 AND ingest_id = ?2
ON CONFLICT (day, tenant, model) DO UPDATE SET
  calls = calls + excluded.calls,
  input_tokens = input_tokens + excluded.input_tokens,
  cache_write_5m_tokens = cache_write_5m_tokens + excluded.cache_write_5m_tokens,
  cache_write_1h_tokens = cache_write_1h_tokens + excluded.cache_write_1h_tokens,
  cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
  output_tokens = output_tokens + excluded.output_tokens,
  cost_micros = cost_micros + excluded.cost_micros,
  unknown_model_calls = unknown_model_calls + excluded.unknown_model_calls,
  cut_calls = cut_calls + excluded.cut_calls,
  no_answer_calls = no_answer_calls + excluded.no_answer_calls,
  held_micros = held_micros + excluded.held_micros,
  maybe_billed_attempts = maybe_billed_attempts + excluded.maybe_billed_attempts`;

/** The two statements that record one event; `ingestId` must be fresh per delivery. */
export function recordStatements(db: D1Database, e: UsageEvent, prices: PriceTable, ingestId: string, now: number): D1PreparedStatement[] {
  const t = tokensOf(e.usage);
  const { price, pricedAs } = lookupPrice(prices, e.model);
  const cost = costMicros(t, price);
  return [
    db
      .prepare(INSERT_CALL)
      .bind(e.request_id, e.ts, utcDay(e.ts), e.tenant, e.model, e.status, t.input, t.cacheWrite5m, t.cacheWrite1h, t.cacheRead, t.output, cost, pricedAs, prices.asOf, ingestId, now, e.ended ?? null, e.no_answer ?? null, e.budget_micros ?? null, e.maybe_billed_attempts ?? 0),
    db.prepare(ADD_TO_DAY).bind(e.request_id, ingestId),
  ];
}

export { DAY_MS };
