// The Worker's bindings, typed by hand to match wrangler.jsonc (a test keeps the two
// equal), plus the secrets documented in .dev.vars.example.
import type { RateLimiter } from "./rate-limiter.ts";

export interface Env {
  // vars (strings, parsed by config.ts)
  UPSTREAM_BASE_URL?: string;
  MAX_RETRIES?: string;
  RETRY_BASE_MS?: string;
  RETRY_MAX_BACKOFF_MS?: string;
  RETRY_AFTER_CAP_MS?: string;
  MAX_BODY_BYTES?: string;
  RATE_LIMIT_FAIL_MODE?: string;
  CORS_ORIGINS?: string;
  METRICS_SAMPLE_RATE?: string;
  TENANT_CACHE_SECONDS?: string;
  SSE_SCAN_LAG_MS?: string;
  // tenant lookups and failed-auth throttling (tenant-cache.ts)
  KV_CACHE_TTL_SECONDS?: string;
  UNKNOWN_KEY_CACHE_SECONDS?: string;
  TENANT_CACHE_ENTRIES?: string;
  UNKNOWN_KEY_CACHE_ENTRIES?: string;
  FAILED_KEYS_PER_MINUTE?: string;
  FAILED_KEYS_BURST?: string;
  HEADERS_TIMEOUT_MS?: string;
  FIRST_EVENT_TIMEOUT_MS?: string;
  SSE_IDLE_TIMEOUT_MS?: string;
  RETRY_DEADLINE_MS?: string;
  BUFFER_BODY_BYTES?: string;
  BUDGET_FAIL_MODE?: string;
  BUDGET_HOLD_TTL_MS?: string;
  // From the inventory, not wrangler.jsonc: the price table as JSON (fleet/metering.yaml
  // through meteringVars() in stacks/model/metering.ts, as for the usage ledger).
  PRICES?: string;
  // metering (metering.ts, archive.ts)
  METERING?: string;
  ARCHIVE_MAX_BYTES?: string;

  TENANTS: KVNamespace;
  RATE_LIMITER: DurableObjectNamespace<RateLimiter>;
  METRICS: AnalyticsEngineDataset;
  VERSION: WorkerVersionMetadata;
  USAGE_EVENTS: Queue;
  ARCHIVE: R2Bucket;

  // secrets
  ANTHROPIC_API_KEY?: string;
  OPERATOR_TOKEN?: string;
}

/** Provider secrets the status endpoint fingerprints (rotation confirms the new one is live). */
export const PROVIDER_SECRETS = ["ANTHROPIC_API_KEY"] as const;
