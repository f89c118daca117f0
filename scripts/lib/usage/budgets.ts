// Tenant budgets for `npm run usage`'s "budget used": `dailyBudgetMicros` and
// `monthlyBudgetMicros` read from the tenant records (the TENANTS KV namespace, through
// scripts/lib/tenants' local or remote store), parsed by the proxy's own
// parseTenantRecord: the report sees a budget exactly when the proxy enforces it. A record
// the proxy refuses as malformed (e.g. a budget that is not whole micro-dollars > 0: its
// keys fail closed) is reported as such, with no budget.
import { KV_PREFIX, parseTenantRecord } from "../../../workers/llm-proxy/src/tenant-record.ts";
import type { TenantKv } from "../tenants/store.ts";

export interface TenantBudget {
  name: string;
  /** null: no daily budget set (parseTenantRecord refuses 0 and non-integers). */
  dailyBudgetMicros: number | null;
  monthlyBudgetMicros: number | null;
  /** Why the tenant has no usable budget though it has a record (shown as "-"). */
  problems: string[];
}

/** Budgets per tenant id, or why there are none for this report. */
export type BudgetLookup =
  | { available: true; source: string; byTenant: Map<string, TenantBudget> }
  | { available: false; source: string | null; reason: string };

const MALFORMED = "tenant record malformed: the proxy refuses this tenant's keys";

/**
 * Every tenant's budgets. A tenant's keys each carry a copy of its record (limits travel
 * in every key's record, see store.ts's setLimits); the one read is its newest enabled
 * key's, else its newest key's, as `npm run tenants` does for limits.
 */
export async function readBudgets(kv: TenantKv): Promise<Map<string, TenantBudget>> {
  const keys: { id: string; enabled: boolean; createdAt: string; name: string; daily: number | null; monthly: number | null }[] = [];
  const malformed = new Map<string, string>();
  for (const k of await kv.list(KV_PREFIX)) {
    let raw: unknown = k.metadata;
    if (parseTenantRecord(raw) === undefined) {
      // Listing metadata missing or stale: the value is the record.
      const text = await kv.get(k.name);
      try {
        raw = JSON.parse(text ?? "null");
      } catch {
        // Not a record: whose key it is cannot be known, so no tenant's budget is shown
        // from it. Said, as `npm run tenants` says it, not dropped silently.
        kv.warn?.(`${k.name} skipped: its value is not JSON, so not a tenant record`);
        continue;
      }
    }
    const rec = parseTenantRecord(raw);
    if (rec === undefined) {
      const r = raw as { id?: unknown; name?: unknown } | null;
      if (typeof r?.id === "string") malformed.set(r.id, typeof r.name === "string" ? r.name : "");
      continue;
    }
    keys.push({ id: rec.id, enabled: rec.enabled, createdAt: rec.createdAt, name: rec.name, daily: rec.dailyBudgetMicros ?? null, monthly: rec.monthlyBudgetMicros ?? null });
  }
  keys.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  const chosen = new Map<string, (typeof keys)[number]>();
  for (const k of keys) {
    const cur = chosen.get(k.id);
    if (cur === undefined || k.enabled || !cur.enabled) chosen.set(k.id, k);
  }
  const out = new Map<string, TenantBudget>();
  for (const [id, name] of malformed) out.set(id, { name, dailyBudgetMicros: null, monthlyBudgetMicros: null, problems: [MALFORMED] });
  for (const [id, k] of chosen) out.set(id, { name: k.name, dailyBudgetMicros: k.daily, monthlyBudgetMicros: k.monthly, problems: [] });
  return out;
}
