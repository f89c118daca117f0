// The DNS records each zone should have: its profile's email and web posture, the
// DMARC report authorisations other zones need from it, and its extra records.
// Pure; used by validation, the desired state, the plan and (later) verification.
import { createHash } from "node:crypto";
import { CLOUDFLARE_CAS, fqdn, isSpf, mailtoDomain } from "./dns.ts";
import { allowsCloudflareCas, MTA_STS_LABEL, mtaStsOf, mtaStsTxt, tlsRptTxt } from "./mail.ts";
import type { FleetFile, Inventory, Profile, Provider, RecordSpec, ZoneSpec } from "./schema.ts";

export type RecordType = RecordSpec["type"];

export interface DnsRec {
  zone: string;
  type: RecordType;
  /** Owner name relative to the zone; '@' is the apex. */
  name: string;
  ttl: number;
  content?: string;
  priority?: number;
  proxied?: boolean;
  caa?: { flags: number; tag: string; value: string };
  srv?: { priority: number; weight: number; port: number; target: string };
  comment?: string;
  /** Tells records of one type and name apart in logical names; from content, never position. */
  key?: string;
  source: "posture" | "report-auth" | "extra";
  /** What the record is for, in words (used in the plan and in errors). */
  what: string;
  /** For extra records: the index in zones[i].records, to locate errors. Never used in names. */
  index?: number;
}

/** The TXT value of the empty DKIM wildcard: 'p=' with no key revokes every selector. */
export const EMPTY_DKIM = "v=DKIM1; p=";
/** The placeholder address of a Workers-only hostname (Cloudflare docs: "originless" setups). */
export const WEB_PLACEHOLDER = "100::";
export const MANAGED_COMMENT = "managed by edgefleet";

export function shortHash(s: string): string {
  return createHash("sha256").update(s).digest("hex").slice(0, 8);
}

export function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "") || "none";
}

const PLACEHOLDER = /\$\{([^}]*)\}/g;

/** Names of the per-zone variables a template needs (from ${vars.NAME}). */
export function templateVars(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].map((m) => m[1]!).filter((v) => v.startsWith("vars.")).map((v) => v.slice(5));
}

/** Placeholders a template uses that edgefleet does not know. */
export function unknownPlaceholders(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)]
    .map((m) => m[1]!)
    .filter((v) => v !== "zone" && v !== "zoneDashed" && !/^vars\.[a-zA-Z][a-zA-Z0-9]*$/.test(v));
}

export function expand(template: string, zone: ZoneSpec): string {
  return template.replace(PLACEHOLDER, (_, v: string) => {
    if (v === "zone") return zone.name;
    if (v === "zoneDashed") return zone.name.replaceAll(".", "-");
    return zone.vars[v.slice(5)] ?? "";
  });
}

/** Variables a zone must define for its profile's provider. */
export function missingVars(zone: ZoneSpec, provider: Provider | undefined): string[] {
  if (!provider) return [];
  const templates = [...provider.mx.map((m) => m.host), ...provider.dkim.map((d) => d.value)];
  return [...new Set(templates.flatMap(templateVars))].filter((v) => !(v in zone.vars)).sort();
}

export interface ResolvedProfile {
  profile: Profile;
  provider: Provider | undefined;
}

export function resolveProfile(inv: Pick<Inventory, "profiles">, zone: ZoneSpec): ResolvedProfile | undefined {
  const profile = inv.profiles.profiles[zone.profile];
  if (!profile) return undefined;
  if (profile.mail === "none") return { profile, provider: undefined };
  const provider = inv.profiles.providers[profile.mail];
  return provider ? { profile, provider } : undefined;
}

/** The DMARC report mailboxes of a zone: the fleet's, then the zone's own. */
export function ruaOf(fleet: FleetFile, zone: ZoneSpec): string[] {
  return [...new Set([fleet.dmarc.rua, ...(zone.overrides.dmarc?.rua ?? [])])];
}

export function spfOf(zone: ZoneSpec, provider: Provider | undefined): string {
  const terms = provider ? [...new Set([...provider.spf, ...(zone.overrides.spf?.include ?? [])])] : [];
  return ["v=spf1", ...terms, "-all"].join(" ");
}

export function dmarcOf(fleet: FleetFile, zone: ZoneSpec): string {
  return `v=DMARC1; p=reject; sp=reject; adkim=s; aspf=s; rua=${ruaOf(fleet, zone).join(",")}`;
}

/** The email and web posture records a zone's profile gives it. */
export function postureRecords(fleet: FleetFile, zone: ZoneSpec, resolved: ResolvedProfile): DnsRec[] {
  const { profile, provider } = resolved;
  const ttl = zone.overrides.ttl ?? fleet.defaults.ttl;
  const web = zone.overrides.web ?? profile.web;
  const z = zone.name;
  const rec = (r: Omit<DnsRec, "zone" | "ttl" | "source"> & { ttl?: number }): DnsRec => ({
    zone: z,
    ttl,
    source: "posture",
    ...r,
  });
  const out: DnsRec[] = [];

  if (provider) {
    for (const mx of provider.mx) {
      const host = expand(mx.host, zone);
      out.push(rec({ type: "MX", name: "@", content: host, priority: mx.priority, key: slug(host), what: `MX of ${provider.name}` }));
    }
    out.push(rec({ type: "TXT", name: "@", content: spfOf(zone, provider), key: "spf", what: `SPF for ${provider.name}` }));
    for (const d of provider.dkim) {
      const name = `${d.selector}._domainkey`;
      const value = expand(d.value, zone);
      out.push(
        d.type === "CNAME"
          ? rec({ type: "CNAME", name, content: value, what: `DKIM selector ${d.selector} of ${provider.name}` })
          : rec({ type: "TXT", name, content: value, key: "dkim", what: `DKIM key ${d.selector} of ${provider.name}` }),
      );
    }
    // Receiving mail (issue 15.6): MTA-STS (RFC 8461) and TLS-RPT (RFC 8460).
    const sts = mtaStsOf(fleet, zone, profile, provider)!;
    out.push(rec({ type: "TXT", name: "_mta-sts", content: mtaStsTxt(sts.id), key: "mta-sts", what: `MTA-STS (RFC 8461), mode ${sts.mode}; the policy is served at https://${sts.host}` }));
    out.push(rec({ type: "TXT", name: "_smtp._tls", content: tlsRptTxt(fleet), key: "tlsrpt", what: "TLS-RPT (RFC 8460): where senders report TLS failures" }));
  } else {
    out.push(rec({ type: "MX", name: "@", content: ".", priority: 0, key: "null", what: "null MX (RFC 7505): accepts no mail" }));
    out.push(rec({ type: "TXT", name: "@", content: spfOf(zone, undefined), key: "spf", what: "SPF -all: sends no mail" }));
    out.push(rec({ type: "TXT", name: "*._domainkey", content: EMPTY_DKIM, key: "dkim", what: "empty DKIM wildcard: no valid key" }));
    out.push(...subdomainRecords(zone, web === "proxied" ? ["www"] : []).map(rec));
  }
  out.push(rec({ type: "TXT", name: "_dmarc", content: dmarcOf(fleet, zone), key: "dmarc", what: "DMARC p=reject" }));

  // CAA: proxied zones keep Cloudflare's CAs able to issue; others allow no CA unless overridden.
  const extraCas = zone.overrides.caa?.issue ?? [];
  const issuers = web === "proxied" ? [...new Set([...CLOUDFLARE_CAS, ...extraCas])] : extraCas.length > 0 ? extraCas : [";"];
  // The MTA-STS policy host is a custom domain of the router: Cloudflare issues a
  // certificate for exactly mta-sts.<zone>, judged by the CAA RRset found climbing from
  // that name (RFC 8659 3). Where the apex's CAA would refuse Cloudflare's CAs, a CAA
  // set at mta-sts lets them issue there (and no CA issue wildcards below it).
  if (provider && !allowsCloudflareCas(issuers)) {
    for (const [tag, value] of [...CLOUDFLARE_CAS.map((ca) => ["issue", ca]), ["issuewild", ";"]] as const) {
      out.push(
        rec({
          type: "CAA",
          name: MTA_STS_LABEL,
          caa: { flags: 0, tag, value },
          key: `0-${tag}-${value === ";" ? "none" : slug(value)}`,
          what: value === ";" ? `CAA ${tag} at the MTA-STS host: no CA may issue wildcards` : `CAA ${tag} at the MTA-STS host: ${value} may issue its certificate`,
        }),
      );
    }
    if (fleet.caa.iodef) out.push(rec({ type: "CAA", name: MTA_STS_LABEL, caa: { flags: 0, tag: "iodef", value: fleet.caa.iodef }, key: "0-iodef", what: "CAA iodef" }));
  }
  for (const tag of ["issue", "issuewild"]) {
    for (const value of issuers) {
      out.push(
        rec({
          type: "CAA",
          name: "@",
          caa: { flags: 0, tag, value },
          key: `0-${tag}-${value === ";" ? "none" : slug(value)}`,
          what: value === ";" ? `CAA ${tag}: no CA may issue` : `CAA ${tag}: ${value} may issue`,
        }),
      );
    }
  }
  if (fleet.caa.iodef) {
    out.push(rec({ type: "CAA", name: "@", caa: { flags: 0, tag: "iodef", value: fleet.caa.iodef }, key: "0-iodef", what: "CAA iodef" }));
  }

  if (web === "proxied") {
    for (const name of ["@", "www"]) {
      out.push(
        rec({ type: "AAAA", name, content: WEB_PLACEHOLDER, proxied: true, ttl: 1, key: "web", what: "proxied placeholder for Worker routes" }),
      );
    }
  }
  return out;
}

type SubdomainRec = Omit<DnsRec, "zone" | "ttl" | "source">;

/**
 * The parked-domain records below the apex of a zone that sends no mail (M3AAWG and
 * UK NCSC practice): `* MX 0 .` and `* TXT "v=spf1 -all"` for names that do not exist;
 * and, because a wildcard never covers a name that exists (RFC 4592 2.2), the null MX
 * and SPF -all at every name that holds an address record (an address alone receives
 * mail as an implicit MX, RFC 5321 5.1), unless that name has its own MX or SPF. `web`
 * lists the posture's own address names.
 *
 * '*' is treated like an address name. Validation refuses a zone's own CNAME, TXT or MX
 * at '*' in a zone that sends no mail (checks/email.ts), so any other record there (an
 * A, a CAA) must not switch the wildcard off. Ignore rules never make the posture yield:
 * these records are managed, and validation refuses a rule that covers them (issue 15
 * item 2: an ignore rule cannot shelter a managed name).
 */
export function subdomainRecords(zone: ZoneSpec, web: readonly string[]): SubdomainRec[] {
  const out: SubdomainRec[] = [];
  const at = new Map<string, RecordSpec[]>();
  for (const r of zone.records) at.set(r.name, [...(at.get(r.name) ?? []), r]);
  const names = new Set(["*", ...web, ...zone.records.filter((r) => r.type === "A" || r.type === "AAAA").map((r) => r.name)]);
  names.delete("@"); // the apex has its own
  for (const name of [...names].sort()) {
    const own = at.get(name) ?? [];
    if (own.some((r) => r.type === "CNAME")) continue; // validation reports a CNAME beside an address, or at '*'
    const where = name === "*" ? "for every name that does not exist (wildcard)" : "at a name with an address record";
    if (!own.some((r) => r.type === "MX")) out.push({ type: "MX", name, content: ".", priority: 0, key: "null", what: `null MX ${where}: accepts no mail` });
    if (!own.some((r) => r.type === "TXT" && isSpf(r.content))) out.push({ type: "TXT", name, content: "v=spf1 -all", key: "spf", what: `SPF -all ${where}: sends no mail` });
  }
  return out;
}

/** A zone's extra records from the inventory, as DnsRecs. */
export function extraRecords(fleet: FleetFile, zone: ZoneSpec): DnsRec[] {
  const ttl = zone.overrides.ttl ?? fleet.defaults.ttl;
  return zone.records.map((r, index): DnsRec => {
    const common = { zone: zone.name, name: r.name, source: "extra" as const, index, comment: r.comment };
    switch (r.type) {
      case "A":
      case "AAAA":
        return { ...common, type: r.type, content: r.content, proxied: r.proxied ?? false, ttl: r.proxied ? 1 : (r.ttl ?? ttl), key: slug(r.content), what: `${r.type} record` };
      case "CNAME":
        return { ...common, type: "CNAME", content: r.content, proxied: r.proxied ?? false, ttl: r.proxied ? 1 : (r.ttl ?? ttl), what: "CNAME record" };
      case "MX":
        return { ...common, type: "MX", content: r.content, priority: r.priority, ttl: r.ttl ?? ttl, key: r.content === "." ? "null" : slug(r.content), what: "MX record" };
      case "TXT":
        return { ...common, type: "TXT", content: r.content, ttl: r.ttl ?? ttl, key: `t-${shortHash(r.content)}`, what: "TXT record" };
      case "CAA":
        return { ...common, type: "CAA", caa: { flags: r.flags, tag: r.tag, value: r.value }, ttl: r.ttl ?? ttl, key: `${r.flags}-${r.tag}-${slug(r.value)}`, what: "CAA record" };
      case "SRV":
        return { ...common, type: "SRV", srv: { priority: r.priority, weight: r.weight, port: r.port, target: r.target }, ttl: r.ttl ?? ttl, key: `${slug(r.target)}-${r.port}`, what: "SRV record" };
    }
  });
}

/** The fleet zone a domain belongs to (the longest zone name that is a suffix of it). */
export function owningZone(zoneNames: ReadonlySet<string>, domain: string): string | undefined {
  const labels = domain.split(".");
  for (let i = 0; i < labels.length - 1; i++) {
    const candidate = labels.slice(i).join(".");
    if (zoneNames.has(candidate)) return candidate;
  }
  return undefined;
}

/**
 * DMARC report authorisation (RFC 7489 7.1): when zone Z sends reports to a mailbox
 * in another fleet zone D, D publishes `Z._report._dmarc.<mailbox domain>` TXT "v=DMARC1".
 */
export function reportAuthRecords(
  fleet: FleetFile,
  zoneNames: ReadonlySet<string>,
  zone: ZoneSpec,
  ttlOf: (zone: string) => number,
): DnsRec[] {
  const out: DnsRec[] = [];
  for (const rua of ruaOf(fleet, zone)) {
    const domain = mailtoDomain(rua);
    const owner = owningZone(zoneNames, domain);
    if (!owner || domain === zone.name) continue;
    const rel = domain === owner ? "" : `.${domain.slice(0, -owner.length - 1)}`;
    out.push({
      zone: owner,
      type: "TXT",
      name: `${zone.name}._report._dmarc${rel}`,
      content: "v=DMARC1",
      ttl: ttlOf(owner),
      key: "report",
      source: "report-auth",
      what: `authorises DMARC reports for ${zone.name} (RFC 7489 7.1)`,
    });
  }
  return out;
}

/**
 * Every record of every zone, grouped by zone, in inventory order. Zones whose profile
 * cannot be resolved are left out (validation reports them).
 */
export function fleetRecords(inv: Inventory): Map<string, DnsRec[]> {
  // Validation and the desired state both need this; compute it once per inventory.
  const cached = memo.get(inv);
  if (cached) return cached;
  const byZone = new Map<string, DnsRec[]>();
  const ttlByZone = new Map(inv.zones.map((z) => [z.name, z.overrides.ttl ?? inv.fleet.defaults.ttl]));
  const ttlOf = (z: string) => ttlByZone.get(z) ?? inv.fleet.defaults.ttl;
  for (const zone of inv.zones) {
    if (!byZone.has(zone.name)) byZone.set(zone.name, []);
  }
  const zoneNames = new Set(byZone.keys());
  for (const zone of inv.zones) {
    const resolved = resolveProfile(inv, zone);
    if (!resolved) continue;
    byZone.get(zone.name)!.push(...postureRecords(inv.fleet, zone, resolved), ...extraRecords(inv.fleet, zone));
    for (const r of reportAuthRecords(inv.fleet, zoneNames, zone, ttlOf)) byZone.get(r.zone)!.push(r);
  }
  memo.set(inv, byZone);
  return byZone;
}

/** Results of fleetRecords; callers treat them as read-only. */
const memo = new WeakMap<Inventory, Map<string, DnsRec[]>>();

/** The owner name of a record, fully qualified. */
export function recordFqdn(r: DnsRec): string {
  return fqdn(r.name, r.zone);
}

/** The record's value as one string, as it appears in a zone file's RDATA. */
export function rdata(r: DnsRec): string {
  switch (r.type) {
    case "MX":
      return `${r.priority} ${r.content === "." ? "." : `${r.content}.`}`;
    case "CAA":
      return `${r.caa!.flags} ${r.caa!.tag} "${r.caa!.value}"`;
    case "SRV":
      return `${r.srv!.priority} ${r.srv!.weight} ${r.srv!.port} ${r.srv!.target}.`;
    case "CNAME":
      return `${r.content}.`;
    default:
      return r.content ?? "";
  }
}
