// Drift mode of `npm run import -- --drift`: compares the records in the Cloudflare
// account with the desired state of the current inventory, per zone: records
// missing from the account, changed (same type and owner, other value or settings),
// and extra (in the account, neither declared nor left alone by an ignore rule).
import type { DesiredState } from "../../../stacks/model/desired.ts";
import { rdata } from "../../../stacks/model/posture.ts";
import { asDnsRec, type AccountRecord, type AccountZone } from "./account.ts";
import { recordKey, recordState } from "./adopt.ts";

export interface RecordDrift {
  kind: "missing" | "changed" | "extra";
  type: string;
  name: string;
  /** What the inventory declares (missing, changed). */
  want?: string;
  /** What the account has (changed, extra). */
  have?: string;
  /** Logical name of the declared record, when there is one. */
  resource?: string;
}

export interface ZoneDrift {
  zone: string;
  status: "in sync" | "drift" | "not in account" | "not in inventory";
  missing: number;
  changed: number;
  extra: number;
  records: RecordDrift[];
}

const show = (r: { ttl: number; proxied?: boolean }, value: string) => `${value} (ttl ${r.ttl === 1 ? "auto" : r.ttl}${r.proxied ? ", proxied" : ""})`;

export function driftReport(state: DesiredState, account: AccountZone[]): ZoneDrift[] {
  const byName = new Map(account.map((z) => [z.name, z]));
  const byId = new Map(account.map((z) => [z.id, z]));
  const out: ZoneDrift[] = [];
  const seen = new Set<string>();
  for (const z of state.zones) {
    const acct = (z.id && byId.get(z.id)) || byName.get(z.name);
    if (!acct) {
      const n = state.resources.filter((r) => r.zone === z.name && r.record).length;
      out.push({ zone: z.name, status: "not in account", missing: n, changed: 0, extra: 0, records: [] });
      continue;
    }
    seen.add(acct.name);
    const ignoredRec = (r: AccountRecord) =>
      z.ignore.some((rule) => (rule.type === "*" || rule.type === r.type) && rule.name === r.name && (!rule.content || rule.content === "*" || rule.content === (r.content ?? "")));
    const have = acct.records.filter((r) => !ignoredRec(r) && !(r.type === "NS" && r.name === "@")).map((r) => asDnsRec(r, z.name));
    const want = state.resources.filter((r) => r.zone === z.name && r.record);
    const haveState = new Set(have.map(recordState));
    const wantState = new Set(want.map((w) => recordState(w.record!)));
    const missing = want.filter((w) => !haveState.has(recordState(w.record!)));
    const extra = have.filter((h) => !wantState.has(recordState(h)));
    const records: RecordDrift[] = [];
    // Pair a missing record with an extra one of the same identity (ttl/proxied change) or, if it is
    // the only one of its type and owner on both sides, the same type and owner (value change).
    const used = new Set<number>();
    for (const m of missing) {
      const rec = m.record!;
      let j = extra.findIndex((e, i) => !used.has(i) && recordKey(e) === recordKey(rec));
      if (j < 0) {
        const sameOwner = (r: { type: string; name: string }) => r.type === rec.type && r.name === rec.name;
        const candidates = extra.map((e, i) => [e, i] as const).filter(([e, i]) => !used.has(i) && sameOwner(e));
        if (candidates.length === 1 && missing.filter((x) => sameOwner(x.record!)).length === 1) j = candidates[0]![1];
      }
      if (j >= 0) {
        used.add(j);
        records.push({ kind: "changed", type: rec.type, name: rec.name, want: show(rec, rdata(rec)), have: show(extra[j]!, rdata(extra[j]!)), resource: m.name });
      } else records.push({ kind: "missing", type: rec.type, name: rec.name, want: show(rec, rdata(rec)), resource: m.name });
    }
    extra.forEach((e, i) => {
      if (!used.has(i)) records.push({ kind: "extra", type: e.type, name: e.name, have: show(e, rdata(e)) });
    });
    const count = (k: RecordDrift["kind"]) => records.filter((r) => r.kind === k).length;
    out.push({ zone: z.name, status: records.length > 0 ? "drift" : "in sync", missing: count("missing"), changed: count("changed"), extra: count("extra"), records });
  }
  for (const a of account) {
    if (!seen.has(a.name)) out.push({ zone: a.name, status: "not in inventory", missing: 0, changed: 0, extra: a.records.length, records: [] });
  }
  return out;
}
