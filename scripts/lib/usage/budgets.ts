// Tenant budgets for `npm run usage`'s "budget used": `dailyBudgetMicros` and
// `monthlyBudgetMicros` read from the tenant records (the TENANTS KV namespace, through
// scripts/lib/tenants' local or remote store). The read is loose on purpose: a record is
// recognised by the proxy's own parseTenantRecord, and the two budget fields are taken
// from the raw record beside it, so records written before budgets existed (no fields)
// and after (fields present) both read, whatever version of tenant-record.ts is checked out.
import { z } from "zod";
import { KV_PREFIX, parseTenantRecord } from "../../../workers/llm-proxy/src/tenant-record.ts";
import type { TenantKv } from "../tenants/store.ts";

export interface TenantBudget {
  name: string;
  /** null: no daily budget (absent, or 0 as for the record's token limits). */
  dailyBudgetMicros: number | null;
  monthlyBudgetMicros: number | null;
  /** Budget fields present but unusable (ignored, shown as "-"). */
  problems: string[];
}

/** Budgets per tenant id, or why there are none for this report. */
export type BudgetLookup =
  | { available: true; source: string; byTenant: Map<string, TenantBudget> }
  | { available: false; source: string | null; reason: string };

const Micros = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const FIELDS = ["dailyBudgetMicros", "monthlyBudgetMicros"] as const;

/** One budget field of a raw record: null when absent or 0, or a problem. */
function budgetField(raw: Record<string, unknown>, field: (typeof FIELDS)[number]): { value: number | null; problem?: string } {
  const v = raw[field];
  if (v === undefined || v === null || v === 0) return { value: null };
  return Micros.safeParse(v).success ? { value: v as number } : { value: null, problem: `${field} is not a whole number of micro-dollars >= 0` };
}

/**
 * Every tenant's budgets. A tenant's keys each carry a copy of its record (limits travel
 * in every key's record, see store.ts's setLimits); the one read is its newest enabled
 * key's, else its newest key's, as `npm run tenants` does for limits.
 */
export async function readBudgets(kv: TenantKv): Promise<Map<string, TenantBudget>> {
  const keys: { id: string; enabled: boolean; createdAt: string; name: string; raw: Record<string, unknown> }[] = [];
  for (const k of await kv.list(KV_PREFIX)) {
    let raw: unknown = k.metadata;
    if (parseTenantRecord(raw) === undefined) {
      // Listing metadata missing or stale: the value is the record.
      const text = await kv.get(k.name);
      try {
        raw = JSON.parse(text ?? "null");
      } catch {
        continue;
      }
    }
    const rec = parseTenantRecord(raw);
    if (rec === undefined) continue;
    keys.push({ id: rec.id, enabled: rec.enabled, createdAt: rec.createdAt, name: rec.name, raw: raw as Record<string, unknown> });
  }
  keys.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  const chosen = new Map<string, (typeof keys)[number]>();
  for (const k of keys) {
    const cur = chosen.get(k.id);
    if (cur === undefined || k.enabled || !cur.enabled) chosen.set(k.id, k);
  }
  const out = new Map<string, TenantBudget>();
  for (const [id, k] of chosen) {
    const fields = FIELDS.map((f) => budgetField(k.raw, f));
    out.set(id, {
      name: k.name,
      dailyBudgetMicros: fields[0]!.value,
      monthlyBudgetMicros: fields[1]!.value,
      problems: fields.flatMap((f) => (f.problem ? [f.problem] : [])),
    });
  }
  return out;
}
