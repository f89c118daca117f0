// What the plan reports about a desired state: counts by profile and record type,
// and findings an operator should read before `pulumi up`.
import { mailtoDomain } from "./dns.ts";
import type { DesiredState } from "./desired.ts";
import { TYPES } from "./names.ts";
import { caaBlockedCnames } from "./mail.ts";
import { owningZone, ruaOf } from "./posture.ts";
import type { Inventory } from "./schema.ts";

export interface Finding {
  level: "info" | "warning" | "error";
  /** Stable identifier, e.g. zone-created. */
  code: string;
  message: string;
  zones?: string[];
}

export interface Summary {
  zones: number;
  zonesByProfile: Record<string, number>;
  recordsByType: Record<string, number>;
  records: number;
  resources: number;
  zonesToCreate: number;
  ignoreRules: number;
}

function countBy<T>(items: T[], key: (t: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of items) out[key(t)] = (out[key(t)] ?? 0) + 1;
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
}

export function summarize(state: DesiredState): Summary {
  const records = state.resources.filter((r) => r.type === TYPES.dnsRecord);
  return {
    zones: state.zones.length,
    zonesByProfile: countBy(state.zones, (z) => z.profile),
    recordsByType: countBy(records, (r) => String(r.inputs.type)),
    records: records.length,
    resources: state.resources.length,
    zonesToCreate: state.resources.filter((r) => r.type === TYPES.zone).length,
    ignoreRules: state.zones.reduce((n, z) => n + z.ignore.length, 0),
  };
}

function list(zones: string[], max = 5): string {
  return zones.length <= max ? zones.join(", ") : `${zones.slice(0, max).join(", ")} and ${zones.length - max} more`;
}

export function findings(inv: Inventory, state: DesiredState): Finding[] {
  const out: Finding[] = [];
  const toCreate = state.resources.filter((r) => r.type === TYPES.zone).map((r) => r.zone);
  if (toCreate.length > 0) {
    out.push({
      level: "info",
      code: "zone-created",
      message: `${toCreate.length} zone(s) have no id: pulumi up creates them (${list(toCreate)}); import existing zones instead of re-creating them`,
      zones: toCreate,
    });
  }
  const ignoring = state.zones.filter((z) => z.ignore.length > 0).map((z) => z.name);
  if (ignoring.length > 0) {
    out.push({
      level: "info",
      code: "left-alone",
      message: `${ignoring.length} zone(s) have records edgefleet leaves alone (${list(ignoring)})`,
      zones: ignoring,
    });
  }
  // Reports to a domain outside the fleet need the authorisation published there by hand.
  const names = new Set(inv.zones.map((z) => z.name));
  const outside = new Map<string, string[]>();
  for (const zone of inv.zones) {
    for (const rua of ruaOf(inv.fleet, zone)) {
      const domain = mailtoDomain(rua);
      if (!owningZone(names, domain) && domain !== zone.name) outside.set(domain, [...(outside.get(domain) ?? []), zone.name]);
    }
  }
  for (const [domain, zones] of outside) {
    out.push({
      level: "warning",
      code: "dmarc-report-authorisation",
      message: `${zones.length} zone(s) send DMARC reports to ${domain}, which is not in this fleet: publish '*._report._dmarc.${domain} TXT "v=DMARC1"' there (${list(zones)})`,
      zones,
    });
  }
  // Issue 15.5: a CNAME to an outside service in a zone whose CAA lets no CA issue.
  for (const f of caaBlockedCnames(inv)) {
    const names = f.names.map((n) => `${n.name === "@" ? f.zone : `${n.name}.${f.zone}`} -> ${n.target}`);
    out.push({
      level: "warning",
      code: "caa-blocks-cname-target",
      message: `${f.zone}: CAA 'issue ";"' at the apex lets no CA issue for ${names.join(", ")}: a CA follows the CNAME and, finding no CAA at the target, climbs to the apex (RFC 8659 3). If the service needs a certificate for the name, add its CA to overrides.caa.issue of ${f.zone} (e.g. issue: [letsencrypt.org]).`,
      zones: [f.zone],
    });
  }
  return out;
}
