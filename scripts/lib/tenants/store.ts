// Tenant operations (create, list, disable) over a minimal KV interface, so the same
// code runs against the local Miniflare state and, through the Cloudflare API, against
// the deployed Worker's namespace. Used by `npm run tenants`, dev-proxy and the tests.
import {
  KV_PREFIX,
  kvKeyFor,
  newTenantId,
  newTenantKey,
  parseTenantRecord,
  sha256Hex,
  type TenantRecord,
} from "../../../workers/llm-proxy/src/tenant-record.ts";

export type { TenantRecord };

/** The few KV operations tenants need; adapters in local.ts and remote.ts. */
export interface TenantKv {
  get(key: string): Promise<string | null>;
  put(key: string, value: string, metadata: unknown): Promise<void>;
  /** Every key under the prefix with its metadata (adapters follow the cursor). */
  list(prefix: string): Promise<{ name: string; metadata: unknown }[]>;
}

export interface NewTenant {
  name: string;
  ratePerMinute: number;
  burst: number;
  /** Reuse an existing tenant id (a second key for the same tenant, e.g. rotation). */
  id?: string;
}

export class TenantError extends Error {}

export function validateNewTenant(t: NewTenant): string[] {
  const errors: string[] = [];
  if (t.name.trim() === "" || t.name.length > 100) errors.push("--name: must be 1 to 100 characters");
  if (!Number.isFinite(t.ratePerMinute) || t.ratePerMinute <= 0) errors.push("--rate: must be a number of requests per minute > 0");
  if (!Number.isInteger(t.burst) || t.burst < 1) errors.push("--burst: must be an integer >= 1");
  if (t.id !== undefined && !/^t_[0-9a-f]{16}$/.test(t.id)) errors.push("--id: must look like t_0123456789abcdef");
  return errors;
}

/** Creates a key for a tenant. The key is returned once; only its hash is stored. */
export async function createTenant(kv: TenantKv, t: NewTenant, now = new Date()): Promise<{ key: string; record: TenantRecord }> {
  const errors = validateNewTenant(t);
  if (errors.length > 0) throw new TenantError(errors.join("\n"));
  const key = newTenantKey();
  const record: TenantRecord = {
    id: t.id ?? newTenantId(),
    name: t.name.trim(),
    ratePerMinute: t.ratePerMinute,
    burst: t.burst,
    enabled: true,
    keyHash: await sha256Hex(key),
    createdAt: now.toISOString(),
  };
  const value = JSON.stringify(record);
  await kv.put(kvKeyFor(record.keyHash), value, record);
  return { key, record };
}

/** Every tenant key's record (one row per key), from the listing's metadata. */
export async function listTenants(kv: TenantKv): Promise<TenantRecord[]> {
  const out: TenantRecord[] = [];
  for (const k of await kv.list(KV_PREFIX)) {
    const r = parseTenantRecord(k.metadata) ?? parseTenantRecord(JSON.parse((await kv.get(k.name)) ?? "null"));
    if (r !== undefined) out.push(r);
  }
  return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
}

/**
 * Disables every key of a tenant. With dryRun, reports what it would change and writes
 * nothing. Idempotent: re-running after an interruption finishes the job.
 */
export async function disableTenant(kv: TenantKv, id: string, dryRun: boolean): Promise<{ changed: TenantRecord[]; alreadyDisabled: number }> {
  const all = (await listTenants(kv)).filter((r) => r.id === id);
  if (all.length === 0) throw new TenantError(`no tenant with id ${id}`);
  const changed = all.filter((r) => r.enabled);
  if (!dryRun) {
    for (const r of changed) {
      const next = { ...r, enabled: false };
      await kv.put(kvKeyFor(r.keyHash), JSON.stringify(next), next);
    }
  }
  return { changed, alreadyDisabled: all.length - changed.length };
}
