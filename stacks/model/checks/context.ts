// What the inventory checks share: the fleet's records indexed by owner name, where
// each record came from in the inventory, and a way to report a located problem.
import { fqdn } from "../dns.ts";
import { fleetRecords, owningZone, resolveProfile, type DnsRec, type ResolvedProfile } from "../posture.ts";
import type { Inventory, ZoneSpec } from "../schema.ts";
import type { FileKey, SemanticProblem } from "../validate.ts";
import type { FleetView } from "./spf.ts";

export type Path = (string | number)[];

export interface ZoneCtx {
  zone: ZoneSpec;
  index: number;
  resolved: ResolvedProfile;
  sendsMail: boolean;
  records: DnsRec[];
}

export interface CheckCtx {
  inv: Inventory;
  zones: ZoneCtx[];
  zoneNames: ReadonlySet<string>;
  zoneIndex: ReadonlyMap<string, number>;
  /** Every record of the fleet by its fully qualified owner name. */
  byName: ReadonlyMap<string, DnsRec[]>;
  view: FleetView;
  add(file: FileKey, path: Path, message: string): void;
  /** Where a record comes from: its entry in records[], else the zone (or, for a report
   * authorisation, the zone that sends the reports). */
  where(r: DnsRec, field?: string): Path;
}

export function buildContext(inv: Inventory, problems: SemanticProblem[]): CheckCtx {
  const records = fleetRecords(inv);
  const zoneIndex = new Map<string, number>();
  inv.zones.forEach((z, i) => {
    if (!zoneIndex.has(z.name)) zoneIndex.set(z.name, i);
  });
  const zones: ZoneCtx[] = [];
  const byName = new Map<string, DnsRec[]>();
  for (const [name, i] of zoneIndex) {
    const zone = inv.zones[i]!;
    const resolved = resolveProfile(inv, zone);
    if (!resolved) continue;
    const recs = records.get(name) ?? [];
    zones.push({ zone, index: i, resolved, sendsMail: resolved.provider !== undefined, records: recs });
  }
  for (const recs of records.values()) {
    for (const r of recs) {
      const n = fqdn(r.name, r.zone);
      const group = byName.get(n);
      if (group) group.push(r);
      else byName.set(n, [r]);
    }
  }
  const zoneNames = new Set(zoneIndex.keys());
  const seen = new Set<string>();

  /** The records answering a name: its own, else the nearest wildcard above it in its zone. */
  const answering = (name: string): DnsRec[] => {
    const own = byName.get(name);
    if (own) return own;
    const zone = owningZone(zoneNames, name);
    let rest = name;
    while (zone && rest !== zone) {
      rest = rest.slice(rest.indexOf(".") + 1);
      const wild = byName.get(`*.${rest}`);
      if (wild) return wild;
      if (byName.has(rest)) break;
    }
    return [];
  };
  const view: FleetView = {
    inFleet: (name) => owningZone(zoneNames, name) !== undefined,
    spfAt: (name) => answering(name).filter((r) => r.type === "TXT" && /^v=spf1(\s|$)/i.test(r.content ?? "")).map((r) => r.content!),
    has: (name, type) => answering(name).some((r) => (type === "A" ? r.type === "A" || r.type === "AAAA" || r.type === "CNAME" : r.type === "MX")),
  };

  const where = (r: DnsRec, field?: string): Path => {
    if (r.source === "report-auth") {
      const sender = r.name.split("._report._dmarc")[0]!;
      const i = zoneIndex.get(sender);
      if (i !== undefined) return ["zones", i, "name"];
    }
    const i = zoneIndex.get(r.zone) ?? 0;
    // A posture record's owner is built from the zone's name: a problem with it is the name's.
    if (r.index === undefined) return field === "name" ? ["zones", i, "name"] : ["zones", i];
    return field ? ["zones", i, "records", r.index, field] : ["zones", i, "records", r.index];
  };
  return {
    inv,
    zones,
    zoneNames,
    zoneIndex,
    byName,
    view,
    add: (file, path, message) => {
      // One problem once: a bad zone name shows up in each of its posture records.
      const key = `${file} ${path.join(".")} ${message}`;
      if (seen.has(key)) return;
      seen.add(key);
      problems.push({ file, path, message });
    },
    where,
  };
}
