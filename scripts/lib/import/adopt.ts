// Adopting an existing Cloudflare account (`npm run import`): gives each zone the
// profile its records match (with the overrides and vars that make the match exact),
// keeps its other records as explicit records, lists records edgefleet must not
// manage (ignore rules), and writes the Pulumi import file. A zone is adopted only if
// the plan of the generated inventory equals its records, so `pulumi up` after the
// import creates nothing.
import { stringify } from "yaml";
import { deriveDesiredState, type DesiredState } from "../../../stacks/model/desired.ts";
import { CLOUDFLARE_CAS, isSpf, relativeNameProblem } from "../../../stacks/model/dns.ts";
import { TYPES, zonePostureName } from "../../../stacks/model/names.ts";
import { assignShards } from "../../../stacks/model/shards.ts";
import { mtaStsModeOf, mtaStsOf, mtaStsTxt } from "../../../stacks/model/mail.ts";
import { expand, extraRecords, fleetRecords, postureRecords, rdata, resolveProfile, type DnsRec } from "../../../stacks/model/posture.ts";
import type { IgnoreRule, Inventory, Provider, RecordSpec, ZoneSpec } from "../../../stacks/model/schema.ts";
import { asDnsRec, type AccountRecord, type AccountZone } from "./account.ts";

/** Identity of a record for comparison: type, owner, value (not ttl or proxied). */
export function recordKey(r: Pick<DnsRec, "type" | "name" | "content" | "priority" | "caa" | "srv">): string {
  return `${r.type} ${r.name} ${rdata(r as DnsRec)}`;
}

/** Identity plus the settings an update would change. */
export function recordState(r: Pick<DnsRec, "type" | "name" | "content" | "priority" | "caa" | "srv" | "ttl" | "proxied">): string {
  return `${recordKey(r)} ttl=${r.ttl} proxied=${r.proxied ?? false}`;
}

const SUPPORTED = new Set(["A", "AAAA", "CNAME", "MX", "TXT", "CAA", "SRV"]);

export interface Unmanaged {
  zone: string;
  type: string;
  name: string;
  value: string;
  why: string;
}

export interface ZoneOutcome {
  zone: string;
  id: string;
  /** The profile assigned, or undefined when no profile matches (the zone is not adopted). */
  profile?: string;
  adopted: number;
  explicit: number;
  unmanaged: number;
  reason?: string;
}

export interface Adoption {
  zones: ZoneSpec[];
  outcomes: ZoneOutcome[];
  unmanaged: Unmanaged[];
  state: DesiredState;
  importFile: PulumiImportFile;
}

export interface PulumiImportFile {
  resources: { type: string; name: string; id?: string; parent?: string; component?: boolean }[];
}

function regexFor(template: string, zone: ZoneSpec): { re: RegExp; vars: string[] } {
  const vars: string[] = [];
  const body = template.replace(/\$\{([^}]*)\}|([^$]+|\$)/g, (_, v: string | undefined, lit: string | undefined) => {
    if (v === undefined) return lit!.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    if (v.startsWith("vars.")) {
      vars.push(v.slice(5));
      return "(.+?)";
    }
    return expand(`\${${v}}`, zone).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  });
  return { re: new RegExp(`^${body}$`, "i"), vars };
}

/** The per-zone vars a provider's templates need, read back from the zone's records. */
function inferVars(provider: Provider, spec: ZoneSpec, records: AccountRecord[]): Record<string, string> {
  const vars: Record<string, string> = {};
  const read = (template: string, candidates: string[]) => {
    const { re, vars: names } = regexFor(template, spec);
    if (names.length === 0) return;
    for (const c of candidates) {
      const m = re.exec(c);
      if (m) {
        names.forEach((n, i) => (vars[n] ??= m[i + 1]!));
        return;
      }
    }
  };
  for (const mx of provider.mx) read(mx.host, records.filter((r) => r.type === "MX" && r.name === "@").map((r) => r.content ?? ""));
  for (const d of provider.dkim) read(d.value, records.filter((r) => r.type === d.type && r.name === `${d.selector}._domainkey`).map((r) => r.content ?? ""));
  return vars;
}

/** Candidate zone specs for one zone: every profile, with web as the profile says and the other way. */
function candidates(inv: Inventory, zone: AccountZone, base: ZoneSpec | undefined): ZoneSpec[] {
  const out: ZoneSpec[] = [];
  const recs = zone.records;
  const dmarc = recs.find((r) => r.type === "TXT" && r.name === "_dmarc" && /^v=DMARC1/.test(r.content ?? ""));
  const spf = recs.find((r) => r.type === "TXT" && r.name === "@" && isSpf(r.content ?? ""));
  const issuers = [...new Set(recs.filter((r) => r.type === "CAA" && r.name === "@" && r.caa?.tag === "issue").map((r) => r.caa!.value))];
  const rua = (dmarc?.content ?? "").match(/(?:^|;)\s*rua=([^;]*)/)?.[1]?.split(",").map((s) => s.trim()).filter(Boolean) ?? [];
  for (const [key, profile] of Object.entries(inv.profiles.profiles)) {
    for (const web of [profile.web, profile.web === "proxied" ? "none" : "proxied"] as const) {
      const spec: ZoneSpec = { name: zone.name, id: zone.id, profile: key, tags: base?.tags ?? [], vars: {}, overrides: {}, records: [], ignore: base?.ignore ?? [], ...(base?.shard ? { shard: base.shard } : {}) };
      if (web !== profile.web) spec.overrides.web = web;
      if (dmarc && dmarc.ttl !== inv.fleet.defaults.ttl && dmarc.ttl !== 1) spec.overrides.ttl = dmarc.ttl;
      const extraCas = issuers.filter((v) => (web === "proxied" ? !(CLOUDFLARE_CAS as readonly string[]).includes(v) : v !== ";"));
      if (extraCas.length > 0) spec.overrides.caa = { issue: extraCas };
      const extraRua = rua.filter((u) => u !== inv.fleet.dmarc.rua);
      if (extraRua.length > 0) spec.overrides.dmarc = { rua: extraRua };
      const provider = profile.mail === "none" ? undefined : inv.profiles.providers[profile.mail];
      if (profile.mail !== "none" && !provider) continue;
      if (provider) {
        spec.vars = inferVars(provider, spec, recs);
        const terms = (spf?.content ?? "").trim().split(/\s+/).slice(1).filter((t) => !/^[-~?+]?all$/i.test(t) && !provider.spf.includes(t));
        if (terms.length > 0) spec.overrides.spf = { include: terms };
        // The MTA-STS mode: the one whose policy id the zone publishes (RFC 8461 3.1).
        const sts = recs.find((r) => r.type === "TXT" && r.name === "_mta-sts")?.content;
        for (const mode of ["testing", "enforce", "none"] as const) {
          const m = mtaStsOf(inv.fleet, { ...spec, overrides: { ...spec.overrides, mtaSts: mode } }, profile, provider);
          if (sts && m && sts === mtaStsTxt(m.id)) {
            if (mode !== mtaStsModeOf(profile, spec)) spec.overrides.mtaSts = mode;
            break;
          }
        }
      }
      out.push(spec);
    }
  }
  return out;
}

/** The best-matching profile for a zone: every posture record it implies exists, the most records explained. */
function matchProfile(inv: Inventory, zone: AccountZone, base: ZoneSpec | undefined): { spec: ZoneSpec; posture: DnsRec[] } | undefined {
  const have = new Set(zone.records.map((r) => recordState(asDnsRec(r, zone.name))));
  let best: { spec: ZoneSpec; posture: DnsRec[] } | undefined;
  for (const spec of candidates(inv, zone, base)) {
    const resolved = resolveProfile(inv, spec);
    if (!resolved) continue;
    let posture: DnsRec[];
    try {
      posture = postureRecords(inv.fleet, spec, resolved);
    } catch {
      continue;
    }
    if (!posture.every((p) => have.has(recordState(p)))) continue;
    const preferBase = base && base.profile === spec.profile;
    if (!best || posture.length > best.posture.length || (posture.length === best.posture.length && preferBase)) best = { spec, posture };
  }
  return best;
}

/**
 * The posture of a zone that sends no mail depends on its extra records (issue 15.5: a
 * null MX and SPF -all at every name with an address record). Once the extras are known,
 * those records are the posture's, not extras: drop them from the zone's records.
 */
function dropImpliedByExtras(inv: Inventory, spec: ZoneSpec): void {
  const resolved = resolveProfile(inv, spec);
  if (!resolved || resolved.provider) return;
  const parkedLike = (r: RecordSpec) => (r.type === "MX" && r.content === ".") || (r.type === "TXT" && r.content === "v=spf1 -all");
  const posture = new Set(postureRecords(inv.fleet, { ...spec, records: spec.records.filter((r) => !parkedLike(r)) }, resolved).map(recordKey));
  const extras = extraRecords(inv.fleet, spec);
  spec.records = spec.records.filter((r, i) => !(parkedLike(r) && posture.has(recordKey(extras[i]!))));
}

function toRecordSpec(r: AccountRecord, zoneTtl: number): RecordSpec {
  const ttl = r.ttl !== zoneTtl && r.ttl !== 1 && !r.proxied ? { ttl: r.ttl } : {};
  const comment = r.comment && r.comment !== "managed by edgefleet" ? { comment: r.comment.slice(0, 100) } : {};
  switch (r.type) {
    case "A":
    case "AAAA":
    case "CNAME":
      return { type: r.type, name: r.name, content: r.content!, ...(r.proxied ? { proxied: true } : {}), ...ttl, ...comment } as RecordSpec;
    case "MX":
      return { type: "MX", name: r.name, priority: r.priority!, content: r.content!, ...ttl, ...comment };
    case "TXT":
      return { type: "TXT", name: r.name, content: r.content!, ...ttl, ...comment };
    case "CAA":
      return { type: "CAA", name: r.name, flags: r.caa!.flags as 0 | 128, tag: r.caa!.tag, value: r.caa!.value, ...ttl, ...comment };
    default:
      return { type: "SRV", name: r.name, ...r.srv!, ...ttl, ...comment };
  }
}

function ignored(rules: IgnoreRule[], r: AccountRecord): boolean {
  return rules.some((rule) => (rule.type === "*" || rule.type === r.type) && rule.name === r.name && (!rule.content || rule.content === "*" || rule.content === (r.content ?? "")));
}

function valueOf(r: AccountRecord, zone: string): string {
  return rdata(asDnsRec(r, zone));
}

/**
 * Builds the inventory zones for an account. `inv` gives fleet.yaml and profiles.yaml
 * (and, for zones it already has, their tags and ignore rules).
 */
export function adopt(inv: Inventory, account: AccountZone[], opts: { accountId: string }): Adoption {
  const baseByName = new Map(inv.zones.map((z) => [z.name, z]));
  const excluded = new Map<string, string>();
  for (let round = 0; round < 5; round++) {
    const specs: ZoneSpec[] = [];
    const unmanaged: Unmanaged[] = [];
    for (const zone of account) {
      if (excluded.has(zone.name)) continue;
      const m = matchProfile(inv, zone, baseByName.get(zone.name));
      if (!m) {
        excluded.set(zone.name, "its records match no profile (posture records missing or different); keep managing it by hand or add a profile");
        continue;
      }
      specs.push(m.spec);
    }
    // Records implied by the whole fleet (posture plus report authorisations), before extras.
    const provisional: Inventory = { ...inv, zones: specs };
    const implied = fleetRecords(provisional);
    for (const spec of specs) {
      const zone = account.find((z) => z.name === spec.name)!;
      const want = new Set((implied.get(spec.name) ?? []).map(recordKey));
      const zoneTtl = spec.overrides.ttl ?? inv.fleet.defaults.ttl;
      for (const r of zone.records) {
        if (want.has(recordKey(asDnsRec(r, zone.name)))) continue;
        const value = valueOf(r, zone.name);
        let why: string | undefined;
        if (ignored(spec.ignore, r)) why = "an ignore rule of the inventory leaves it alone";
        else if (!SUPPORTED.has(r.type)) why = `edgefleet does not manage ${r.type} records`;
        else if (r.name === "@" && r.type === "NS") why = "Cloudflare's own name servers";
        else if (relativeNameProblem(r.name)) why = `owner name '${r.name}' is not one edgefleet can declare`;
        if (why) {
          unmanaged.push({ zone: zone.name, type: r.type, name: r.name, value, why });
          if (!ignored(spec.ignore, r)) spec.ignore = [...spec.ignore, { type: r.type, name: r.name }];
          continue;
        }
        spec.records = [...spec.records, toRecordSpec(r, zoneTtl)];
      }
      dropImpliedByExtras(inv, spec);
    }
    // Prove it: the plan of the generated inventory must equal each adopted zone's managed records.
    const full: Inventory = { ...inv, zones: specs };
    const state = deriveDesiredState(full, { accountId: opts.accountId, workers: false });
    const planned = new Map<string, string[]>();
    for (const res of state.resources) if (res.record) planned.set(res.zone, [...(planned.get(res.zone) ?? []), recordState(res.record)]);
    let again = false;
    for (const spec of specs) {
      const zone = account.find((z) => z.name === spec.name)!;
      const leave = new Set(unmanaged.filter((u) => u.zone === zone.name).map((u) => `${u.type} ${u.name} ${u.value}`));
      const have = zone.records.filter((r) => !leave.has(`${r.type} ${r.name} ${valueOf(r, zone.name)}`)).map((r) => recordState(asDnsRec(r, zone.name))).sort();
      const want = (planned.get(spec.name) ?? []).sort();
      const create = want.filter((w) => !have.includes(w));
      const lose = have.filter((h) => !want.includes(h));
      if (create.length > 0 || lose.length > 0) {
        excluded.set(spec.name, `adopting it would ${create.length > 0 ? `create ${create.slice(0, 3).join("; ")}` : ""}${create.length > 0 && lose.length > 0 ? " and " : ""}${lose.length > 0 ? `drop ${lose.slice(0, 3).join("; ")}` : ""}`);
        again = true;
      }
    }
    if (again) continue;
    return finish(account, specs, unmanaged, excluded, state);
  }
  throw new Error("internal: adoption did not settle after 5 rounds");
}

function finish(account: AccountZone[], specs: ZoneSpec[], unmanaged: Unmanaged[], excluded: Map<string, string>, state: DesiredState): Adoption {
  const idOf = new Map<string, string>();
  for (const zone of account) for (const r of zone.records) idOf.set(`${zone.name} ${recordKey(asDnsRec(r, zone.name))}`, r.id);
  const resources: PulumiImportFile["resources"] = [];
  const outcomes: ZoneOutcome[] = [];
  for (const spec of specs) {
    // Pulumi >= 3.94 creates the empty component parents named in the same file.
    resources.push({ type: TYPES.zonePosture, name: zonePostureName(spec.name), component: true });
    let adopted = 0;
    for (const res of state.resources) {
      if (res.zone !== spec.name || !res.record) continue;
      const id = idOf.get(`${spec.name} ${recordKey(res.record)}`);
      if (!id) throw new Error(`internal: no account record for ${res.name}`);
      resources.push({ type: res.type, name: res.name, id: `${spec.id}/${id}`, parent: res.parent });
      adopted++;
    }
    outcomes.push({ zone: spec.name, id: spec.id!, profile: spec.profile, adopted, explicit: spec.records.length, unmanaged: unmanaged.filter((u) => u.zone === spec.name).length });
  }
  for (const zone of account) {
    const reason = excluded.get(zone.name);
    if (reason) outcomes.push({ zone: zone.name, id: zone.id, adopted: 0, explicit: 0, unmanaged: zone.records.length, reason });
  }
  outcomes.sort((a, b) => (a.zone < b.zone ? -1 : 1));
  return { zones: specs, outcomes, unmanaged, state, importFile: { resources } };
}

/**
 * The import file split by DNS shard (fleet.yaml stacks.shards): each shard's stack
 * declares only its zones, so each must import only those (`pulumi import --stack`).
 * Undefined when the fleet is not sharded.
 */
export function importFilesByShard(inv: Inventory, adoption: Adoption): Map<string, PulumiImportFile> | undefined {
  const assigned = assignShards({ ...inv, zones: adoption.zones });
  if (!assigned) return undefined;
  const out = new Map<string, PulumiImportFile>(inv.fleet.stacks!.shards.map((s) => [s, { resources: [] }]));
  for (const r of adoption.importFile.resources) {
    // A component is named for its zone; a record names its component as parent.
    const zone = r.component ? r.name : r.parent!;
    out.get(assigned.get(zone)!)!.resources.push(r);
  }
  return out;
}

/** zones.yaml for the adopted zones, with empty fields left out. */
export function zonesYaml(specs: ZoneSpec[], header: string): string {
  const zones = specs.map((s) => {
    const z: Record<string, unknown> = { name: s.name, id: s.id, profile: s.profile };
    if (s.shard) z.shard = s.shard;
    if (s.tags.length > 0) z.tags = s.tags;
    if (Object.keys(s.vars).length > 0) z.vars = s.vars;
    if (Object.keys(s.overrides).length > 0) z.overrides = s.overrides;
    if (s.records.length > 0) z.records = s.records;
    if (s.ignore.length > 0) z.ignore = s.ignore;
    return z;
  });
  return `${header}${stringify({ zones }, { lineWidth: 0 })}`;
}
