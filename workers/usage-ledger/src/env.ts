// The ledger's Env: wrangler's generated bindings (worker-configuration.d.ts) plus the
// two vars that come from the inventory, not from wrangler.jsonc (fleet/metering.yaml,
// through meteringVars() in stacks/model/metering.ts).
export interface LedgerEnv extends Env {
  /** The price table as JSON (PriceTableJsonSchema). */
  PRICES?: string;
  /** Days a call row is kept. */
  CALL_RETENTION_DAYS?: string;
  /** Seconds before a batch whose write failed for every event comes back (doubled per
   *  attempt, at most 600; default 30): d1-retry.ts retryDelaySeconds. */
  WRITE_RETRY_SECONDS?: string;
}
