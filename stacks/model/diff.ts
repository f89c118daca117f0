// Compares two desired states resource by resource (by logical name) and applies
// the safety guard: a change that rewrites too much of a zone, or touches too much
// of the fleet, is refused unless forced. Used by `npm run plan --base` and drafts.
import { isSpf } from "./dns.ts";
import { TYPES } from "./names.ts";
import type { DesiredResource, DesiredState } from "./desired.ts";
import { EMPTY_DKIM, type DnsRec } from "./posture.ts";
import type { FleetFile } from "./schema.ts";

export type ChangeKind = "add" | "change" | "remove";

export interface ResourceChange {
  kind: ChangeKind;
  type: string;
  name: string;
  zone: string;
  /** For changes: the input fields whose values differ. */
  fields?: string[];
  before?: DesiredResource;
  after?: DesiredResource;
}

export interface ZoneDiff {
  zone: string;
  added: number;
  changed: number;
  removed: number;
  /** Of `added`: records at posture-sensitive names (see addsPostureRisk), judged like changes. */
  sensitiveAdded: number;
  /** Managed DNS records of the zone before the change. */
  recordsBefore: number;
  status: "new" | "removed" | "changed";
}

export interface PlanDiff {
  changes: ResourceChange[];
  zones: ZoneDiff[];
  totals: { added: number; changed: number; removed: number; zonesTouched: number; zonesBefore: number };
}

/** JSON with object keys sorted, so equal values always print the same. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v && typeof v === "object") {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}

const key = (r: DesiredResource) => `${r.type}::${r.name}`;

export function diffStates(before: DesiredState, after: DesiredState): PlanDiff {
  const old = new Map(before.resources.map((r) => [key(r), r]));
  const now = new Map(after.resources.map((r) => [key(r), r]));
  const changes: ResourceChange[] = [];
  for (const [k, a] of now) {
    const b = old.get(k);
    if (!b) {
      changes.push({ kind: "add", type: a.type, name: a.name, zone: a.zone, after: a });
      continue;
    }
    const fields = [...new Set([...Object.keys(a.inputs), ...Object.keys(b.inputs)])]
      .filter((f) => canonical(a.inputs[f]) !== canonical(b.inputs[f]))
      .sort();
    if (fields.length > 0) changes.push({ kind: "change", type: a.type, name: a.name, zone: a.zone, fields, before: b, after: a });
  }
  for (const [k, b] of old) {
    if (!now.has(k)) changes.push({ kind: "remove", type: b.type, name: b.name, zone: b.zone, before: b });
  }
  changes.sort((x, y) => (x.zone === y.zone ? (x.name < y.name ? -1 : x.name > y.name ? 1 : 0) : x.zone < y.zone ? -1 : 1));

  const zonesBefore = new Set(before.zones.map((z) => z.name));
  const zonesAfter = new Set(after.zones.map((z) => z.name));
  const recordsBefore = new Map<string, number>();
  for (const r of before.resources) if (r.type === TYPES.dnsRecord) recordsBefore.set(r.zone, (recordsBefore.get(r.zone) ?? 0) + 1);
  const byZone = new Map<string, ZoneDiff>();
  for (const c of changes) {
    // The guard judges the DNS posture: Worker changes are listed but touch no zone's share.
    if (c.type !== TYPES.dnsRecord && c.type !== TYPES.zone && c.type !== TYPES.zonePosture) continue;
    let z = byZone.get(c.zone);
    if (!z) {
      const status = !zonesBefore.has(c.zone) ? "new" : !zonesAfter.has(c.zone) ? "removed" : "changed";
      z = { zone: c.zone, added: 0, changed: 0, removed: 0, sensitiveAdded: 0, recordsBefore: recordsBefore.get(c.zone) ?? 0, status };
      byZone.set(c.zone, z);
    }
    if (c.type !== TYPES.dnsRecord) continue;
    if (c.kind === "add") {
      z.added++;
      if (c.after?.record && addsPostureRisk(c.after.record)) z.sensitiveAdded++;
    } else if (c.kind === "change") z.changed++;
    else z.removed++;
  }
  const zones = [...byZone.values()];
  return {
    changes,
    zones,
    totals: {
      added: zones.reduce((n, z) => n + z.added, 0),
      changed: zones.reduce((n, z) => n + z.changed, 0),
      removed: zones.reduce((n, z) => n + z.removed, 0),
      zonesTouched: zones.length,
      zonesBefore: zonesBefore.size,
    },
  };
}

/**
 * Whether adding this record can weaken or take over the zone's posture, so that an
 * addition is judged like a change: the apex (`@`: MX, SPF, CAA, A records that
 * redirect the zone), wildcards (`*`, which answer for every name that does not exist),
 * DMARC (`_dmarc` and below), DKIM keys (`<selector>._domainkey`, where a key
 * beside the empty wildcard makes a selector valid), and SPF at any name (a second SPF
 * record, or one that allows a sender). Additions elsewhere (a new `api` A record)
 * rewrite nothing and are not counted.
 */
export function postureSensitive(r: Pick<DnsRec, "name" | "type" | "content">): boolean {
  const labels = r.name.split(".");
  if (r.name === "@" || labels[0] === "*") return true;
  if (labels[0]!.startsWith("_dmarc")) return true;
  if (labels.includes("_domainkey")) return true;
  return r.type === "TXT" && r.content !== undefined && isSpf(r.content);
}

/**
 * Whether an added record counts as a rewrite of its zone: one at a posture-sensitive
 * name, unless it is one of the posture's own denials. The posture derives a null MX and
 * `v=spf1 -all` at every name that holds an address record and at `*`, and the empty DKIM
 * wildcard (posture.ts subdomainRecords, postureRecords); they accept no mail, allow no
 * sender and validate no key, so they can only tighten the zone, and counting them would
 * make an operator's plain `shop A` record (which brings `shop TXT "v=spf1 -all"`) look
 * like a rewrite. Everything else at those names still counts: any record the operator
 * writes (a second `v=spf1 -all` beside an SPF breaks it, RFC 7208 4.5), and the
 * posture's records that allow something (a provider's MX or DKIM, the proxied
 * placeholder at the apex, CAA issue at the MTA-STS host).
 */
export function addsPostureRisk(r: Pick<DnsRec, "name" | "type" | "content" | "priority" | "source">): boolean {
  if (!postureSensitive(r)) return false;
  return !(r.source === "posture" && isPostureDenial(r));
}

function isPostureDenial(r: Pick<DnsRec, "name" | "type" | "content" | "priority">): boolean {
  if (r.type === "MX") return r.content === "." && r.priority === 0; // null MX, RFC 7505
  if (r.type === "TXT" && r.content !== undefined) {
    if (/^v=spf1\s+-all$/i.test(r.content.trim())) return true;
    return r.content === EMPTY_DKIM;
  }
  return false;
}

export interface GuardVerdict {
  ok: boolean;
  /** One sentence per reason the change is refused. */
  violations: string[];
  limits: FleetFile["guard"];
}

/** The guard's limits as a fleet.yaml declares them. */
export type GuardLimits = FleetFile["guard"];

/**
 * The safety guard. The limits are the base's (the protected branch's): a change that
 * loosens them is itself refused (a separate violation, overridden only by --force),
 * and a change that tightens them is judged by the tighter ones, so a change can never
 * loosen the guard that judges it, nor pass a loosening for the next change to use.
 */
export function applyGuard(diff: PlanDiff, base: GuardLimits, change: GuardLimits = base): GuardVerdict {
  const effective = {
    maxZoneChangeShare: Math.min(base.maxZoneChangeShare, change.maxZoneChangeShare),
    maxFleetShare: Math.min(base.maxFleetShare, change.maxFleetShare),
  };
  const violations: string[] = [];
  for (const key of ["maxZoneChangeShare", "maxFleetShare"] as const) {
    if (change[key] > base[key]) {
      violations.push(`the change loosens the guard: fleet.yaml guard.${key} ${pct(base[key])} -> ${pct(change[key])} (loosening the guard needs --force and its own review)`);
    }
  }
  for (const z of diff.zones) {
    if (z.recordsBefore === 0) continue; // a new zone rewrites nothing
    const share = (z.changed + z.removed + z.sensitiveAdded) / z.recordsBefore;
    if (share > effective.maxZoneChangeShare) {
      const rewritten = z.changed + z.removed + z.sensitiveAdded;
      violations.push(
        z.status === "removed"
          ? `${z.zone}: removes the zone and all ${z.recordsBefore} managed records (${pct(share)} > ${pct(effective.maxZoneChangeShare)} allowed per zone)`
          : `${z.zone}: rewrites ${rewritten} of its ${z.recordsBefore} managed records (${z.changed} changed, ${z.removed} removed, ` +
              `${z.sensitiveAdded} added at posture-sensitive names; ${pct(share)} > ${pct(effective.maxZoneChangeShare)} allowed per zone)`,
      );
    }
  }
  const fleetSize = Math.max(diff.totals.zonesBefore, 1);
  const fleetShare = diff.totals.zonesTouched / fleetSize;
  if (diff.totals.zonesBefore > 0 && fleetShare > effective.maxFleetShare) {
    violations.push(
      `the change touches ${diff.totals.zonesTouched} of ${diff.totals.zonesBefore} zones (${pct(fleetShare)} > ${pct(effective.maxFleetShare)} of the fleet allowed)`,
    );
  }
  return { ok: violations.length === 0, violations, limits: effective };
}

function pct(x: number): string {
  return `${Math.round(x * 1000) / 10}%`;
}
