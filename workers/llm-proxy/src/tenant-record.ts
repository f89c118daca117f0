// Tenant records and key hashing, shared by the Worker and `npm run tenants` (pure: Web
// Crypto only, so it runs in workerd and in Node). The KV key of a tenant key is
// `key:<sha256 hex of the key>`; the value (and the KV metadata, for listing) is the
// record. The key itself is stored nowhere.

import { idPattern, TENANT_ID_MAX } from "../../shared/ids.ts";

const RECORD_ID = idPattern(TENANT_ID_MAX);

export interface TenantRecord {
  /** Stable id, e.g. `t_3f9a...`; names the tenant's rate-limit Durable Object. */
  id: string;
  name: string;
  /** Sustained rate: requests per minute. */
  ratePerMinute: number;
  /** Bucket size: requests allowed at once after a quiet period. */
  burst: number;
  enabled: boolean;
  /** Input tokens per minute (uncached input + cache writes; cache reads are free, as
   *  Anthropic counts them). Absent or 0: no limit. */
  inputTokensPerMinute?: number;
  /** Output tokens per minute. Absent or 0: no limit. */
  outputTokensPerMinute?: number;
  /** Spend budgets in integer micro-dollars per fixed UTC day / month (policy/budget.ts).
   *  Absent: no budget of that kind. */
  dailyBudgetMicros?: number;
  monthlyBudgetMicros?: number;
  /** Opted in to the archive: its calls' request and response bodies are kept in R2
   *  (archive.ts, docs/metering.md). Absent: not archived. */
  archive?: boolean;
  /** SHA-256 of the key, hex; compared in constant time after the lookup. */
  keyHash: string;
  createdAt: string;
}

export const KEY_PREFIX = "efk_";
export const KV_PREFIX = "key:";
/** KV key of a tenant's marker (`tenant:<id>`): written by `tenants disable` before it
 *  flips the keys, so a key created meanwhile is refused too; auth reads it. */
export const TENANT_PREFIX = "tenant:";

export interface TenantMarker {
  id: string;
  disabled: boolean;
  /** When it was last changed (ISO 8601). */
  at: string;
}

export function tenantMarkerKey(id: string): string {
  return TENANT_PREFIX + id;
}

export function parseTenantMarker(v: unknown): TenantMarker | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const r = v as Record<string, unknown>;
  if (typeof r.id !== "string" || typeof r.disabled !== "boolean") return undefined;
  return { id: r.id, disabled: r.disabled, at: typeof r.at === "string" ? r.at : "" };
}

// Two hex digits per byte value: the proxy hashes the presented key on every call, and a
// table lookup per byte costs a fraction of toString/padStart/map/join.
const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));
const encoder = new TextEncoder();

export async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
  let hex = "";
  for (const b of digest) hex += HEX[b];
  return hex;
}

export function kvKeyFor(keyHash: string): string {
  return KV_PREFIX + keyHash;
}

function randomToken(bytes: number): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  // base64url without padding
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A new tenant key: `efk_` + 32 random bytes (256 bits), base64url. */
export function newTenantKey(): string {
  return KEY_PREFIX + randomToken(32);
}

export function newTenantId(): string {
  return "t_" + [...crypto.getRandomValues(new Uint8Array(8))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Checks a record read back from KV; anything malformed is treated as no tenant. */
export function parseTenantRecord(v: unknown): TenantRecord | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const r = v as Record<string, unknown>;
  if (
    typeof r.id !== "string" ||
    typeof r.name !== "string" ||
    typeof r.ratePerMinute !== "number" ||
    typeof r.burst !== "number" ||
    typeof r.enabled !== "boolean" ||
    typeof r.keyHash !== "string"
  )
    return undefined;
  // Token limits are optional (records written before them have none); anything but a
  // finite number >= 0 makes the record malformed, so it fails closed like one.
  for (const k of ["inputTokensPerMinute", "outputTokensPerMinute"] as const) {
    if (r[k] !== undefined && (typeof r[k] !== "number" || !Number.isFinite(r[k]) || r[k] < 0)) return undefined;
  }
  // Budgets likewise, as whole micro-dollars above 0.
  for (const k of ["dailyBudgetMicros", "monthlyBudgetMicros"] as const) {
    if (r[k] !== undefined && (typeof r[k] !== "number" || !Number.isSafeInteger(r[k]) || r[k] <= 0)) return undefined;
  }
  // The archive flag is optional too; anything but a boolean is malformed (fails closed).
  if (r.archive !== undefined && typeof r.archive !== "boolean") return undefined;
  // The id names the tenant in its usage events, data points and Durable Object: one the
  // ledger's schema refuses (a space, over 64 characters: a hand-edited record) would be
  // served and never billed, so the record is malformed.
  if (!RECORD_ID.test(r.id)) return undefined;
  return {
    id: r.id,
    name: r.name,
    ratePerMinute: r.ratePerMinute,
    burst: r.burst,
    enabled: r.enabled,
    ...(typeof r.inputTokensPerMinute === "number" && r.inputTokensPerMinute > 0 ? { inputTokensPerMinute: r.inputTokensPerMinute } : {}),
    ...(typeof r.outputTokensPerMinute === "number" && r.outputTokensPerMinute > 0 ? { outputTokensPerMinute: r.outputTokensPerMinute } : {}),
    ...(typeof r.dailyBudgetMicros === "number" ? { dailyBudgetMicros: r.dailyBudgetMicros } : {}),
    ...(typeof r.monthlyBudgetMicros === "number" ? { monthlyBudgetMicros: r.monthlyBudgetMicros } : {}),
    ...(r.archive === true ? { archive: true } : {}),
    keyHash: r.keyHash,
    createdAt: typeof r.createdAt === "string" ? r.createdAt : "",
  };
}
