// The ledger's Env: wrangler's generated bindings (worker-configuration.d.ts) plus the
// two vars that come from the inventory, not from wrangler.jsonc (fleet/metering.yaml,
// through meteringVars() in stacks/model/metering.ts).
export interface LedgerEnv extends Env {
  /** The price table as JSON (PriceTableJsonSchema). */
  PRICES?: string;
  /** Days a call row is kept. */
  CALL_RETENTION_DAYS?: string;
}
