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
