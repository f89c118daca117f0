// The bound on a token count, shared by the usage event's schema (usage-event.ts) and the
// proxy (metering.ts, the usage event it builds; policy/token-estimate.ts, the max_tokens
// it admits). Free of zod, so the proxy's bundle does not take the schema in with it.

/** An upper bound per token count: far above any context window or output limit, it
 * only keeps a corrupt or hostile event from reaching the ledger's sums, and a price of
 * that many tokens stays a safe integer. */
export const MAX_TOKENS_PER_CALL = 100_000_000;

/** The bound on a usage event's maybe_billed_attempts: the proxy's MAX_RETRIES is at most
 *  10 (config.ts); this only keeps a corrupt event out of the ledger's sums. */
export const MAX_ATTEMPTS = 100;

/** The bound on a usage event's budget_micros: one million dollars for one call, above
 *  any reservation or cost a price table can produce (pricing.ts MAX_PRICE_DOLLARS). It keeps the
 *  ledger's day sums (usage_daily.held_micros, a STRICT INTEGER column) exact: at
 *  Number.MAX_SAFE_INTEGER, two events already summed past what JavaScript reads exactly,
 *  and 1,024 overflowed SQLite's 64 bits into a REAL the column refuses, which failed every
 *  later event of that tenant, model and day (found by a review). */
export const MAX_BUDGET_MICROS = 1_000_000_000_000;
