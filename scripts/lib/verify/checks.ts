// The posture checks of `npm run verify`: what each zone should answer (from the
// desired state) and one function per check that compares a live answer with it,
// following the RFCs (7505 null MX, 7208 SPF, 7489/9989 DMARC, 8659 CAA).
import { spf as evaluateSpf } from "mailauth/lib/spf/index.js";
import type { DesiredState } from "../../../stacks/model/desired.ts";
import { CLOUDFLARE_CAS, fqdn, isSpf, typographicDash } from "../../../stacks/model/dns.ts";
import type { Answer, CaaAnswer, Dns } from "./dns.ts";
import { checkMtaSts, checkTlsRpt, type MtaStsExpectation, type PolicyFetcher } from "./mta-sts.ts";

export const CHECKS = ["mx", "spf", "dmarc", "dkim", "report-auth", "caa", "mta-sts", "tls-rpt"] as const;
export type CheckName = (typeof CHECKS)[number];

/** pass; drift (the world differs from the declaration); error (could not verify); skip (nothing declared). */
export type Status = "pass" | "drift" | "error" | "skip";

export interface CheckResult {
  check: CheckName;
  status: Status;
  /** Why the check did not pass, one sentence each. */
  problems: string[];
  /** What was seen (for --json and the HTML report). */
  details: string[];
}

/** What one zone should answer, derived from the desired state. */
export interface ZoneExpectation {
  zone: string;
  profile: string;
  proxied: boolean;
  mx: { exchange: string; priority: number }[];
  spf?: string;
  dmarc?: string;
  dkim: { query: string; type: "TXT" | "CNAME"; content: string; wildcard: boolean }[];
  /** Fully qualified names of the report authorisations receivers look up for this zone. */
  reportAuth: string[];
  caa: { issue: string[]; issuewild: string[]; iodef: string[] };
  /** Zones that receive mail: the policy host, id and text (RFC 8461), and the TLS-RPT record (RFC 8460). */
  mtaSts?: MtaStsExpectation;
  tlsRpt?: string;
}

/** A selector nobody uses, to probe the DKIM wildcard. */
export const DKIM_PROBE = "edgefleet-verify-probe";
/** RFC 5737 documentation address: authorised by no real SPF policy. */
export const PROBE_IP = "192.0.2.1";

/** `policies`: the MTA-STS policy text per policy host (stacks/model/mail.ts mtaStsSiteFiles). */
export function expectations(state: DesiredState, policies: ReadonlyMap<string, string> = new Map()): Map<string, ZoneExpectation> {
  const out = new Map<string, ZoneExpectation>();
  for (const z of state.zones) {
    out.set(z.name, {
      zone: z.name,
      profile: z.profile,
      proxied: false,
      mx: [],
      dkim: [],
      reportAuth: [],
      caa: { issue: [], issuewild: [], iodef: [] },
    });
  }
  for (const res of state.resources) {
    const r = res.record;
    if (!r) continue;
    const e = out.get(r.zone)!;
    if (r.proxied) e.proxied = true;
    if (r.source === "report-auth") {
      // The record lives in the mailbox's zone, but it answers for the sending zone.
      const sender = r.name.slice(0, r.name.indexOf("._report._dmarc"));
      out.get(sender)?.reportAuth.push(fqdn(r.name, r.zone));
      continue;
    }
    if (r.type === "MX" && r.name === "@") e.mx.push({ exchange: r.content === "." ? "" : r.content!, priority: r.priority! });
    else if (r.type === "TXT" && r.name === "@" && isSpf(r.content!)) e.spf = r.content;
    else if (r.type === "TXT" && r.name === "_dmarc") e.dmarc = r.content;
    else if (r.type === "TXT" && r.name === "_mta-sts") {
      const host = fqdn("mta-sts", r.zone);
      e.mtaSts = { host, id: r.content!.replace(/^.*\bid=/, ""), policy: policies.get(host) ?? "" };
    } else if (r.type === "TXT" && r.name === "_smtp._tls") e.tlsRpt = r.content;
    else if ((r.type === "TXT" || r.type === "CNAME") && /(^|\.)_domainkey$/.test(r.name)) {
      const wildcard = r.name.startsWith("*.");
      const name = wildcard ? `${DKIM_PROBE}${r.name.slice(1)}` : r.name;
      e.dkim.push({ query: fqdn(name, r.zone), type: r.type, content: r.content!, wildcard });
    } else if (r.type === "CAA" && r.name === "@") {
      const list = e.caa[r.caa!.tag as "issue" | "issuewild" | "iodef"];
      list?.push(r.caa!.value);
    }
  }
  return out;
}

function result(check: CheckName, problems: string[], details: string[], errors: string[] = []): CheckResult {
  // A failed query means "cannot verify", never drift (the issue's rule); real drift wins.
  const status: Status = problems.length > 0 ? "drift" : errors.length > 0 ? "error" : "pass";
  return { check, status, problems: problems.length > 0 ? problems : errors, details };
}

function unverified(check: CheckName, what: string, a: { error: string }): CheckResult {
  return { check, status: "error", problems: [`${what}: ${a.error}`], details: [] };
}

const mxText = (m: { exchange: string; priority: number }) => `${m.priority} ${m.exchange === "" ? "." : m.exchange}`;

export async function checkMx(dns: Dns, e: ZoneExpectation): Promise<CheckResult> {
  const a = await dns.mx(e.zone);
  if (!a.ok) return unverified("mx", `MX ${e.zone}`, a);
  const got = a.records.map(mxText).sort();
  const want = e.mx.map(mxText).sort();
  const problems: string[] = [];
  const nullDeclared = e.mx.some((m) => m.exchange === "");
  const hasNull = a.records.some((m) => m.exchange === "");
  if (hasNull && a.records.length > 1) {
    const others = got.filter((g) => g !== "0 .");
    problems.push(`a null MX must be the only MX (RFC 7505 3): also found ${others.join(", ")}`);
  }
  if (got.length === 0) problems.push(nullDeclared ? "no MX record: the null MX (0 .) is missing" : `no MX record; declared ${want.join(", ")}`);
  else if (nullDeclared && !hasNull) problems.push(`MX is ${got.join(", ")}; declared the null MX (0 .) only`);
  else if (problems.length === 0) {
    const missing = want.filter((w) => !got.includes(w));
    const extra = got.filter((g) => !want.includes(g));
    if (missing.length > 0) problems.push(`missing MX ${missing.join(", ")}`);
    if (extra.length > 0) problems.push(`undeclared MX ${extra.join(", ")}`);
  }
  return result("mx", problems, [`MX: ${got.join(", ") || "(none)"}`]);
}

const norm = (s: string) => s.trim().replace(/\s+/g, " ");

export async function checkSpf(dns: Dns, e: ZoneExpectation, timeoutMs: number): Promise<CheckResult> {
  const a = await dns.txt(e.zone);
  if (!a.ok) return unverified("spf", `TXT ${e.zone}`, a);
  const records = a.records.filter(isSpf);
  const problems: string[] = [];
  const details = records.map((r) => `SPF: ${r}`);
  if (records.length === 0) problems.push(`no SPF record at ${e.zone}${e.spf ? `; declared '${e.spf}'` : ""}`);
  if (records.length > 1) problems.push(`${records.length} SPF records (RFC 7208 3.2 allows exactly one; receivers return permerror): ${records.map((r) => `'${r}'`).join(", ")}`);
  for (const r of records) {
    const dash = typographicDash(r);
    if (dash) problems.push(`typographic dash (${dash}) in '${r}': '-all' must use the ASCII hyphen-minus, else the term is invalid`);
  }
  if (records.length === 1 && e.spf && norm(records[0]!) !== norm(e.spf) && problems.length === 0) {
    problems.push(`SPF is '${records[0]}'; declared '${e.spf}'`);
  }
  // Evaluate as a receiver would: a documentation address must be refused (fail) by
  // every posture we declare, and the lookups must stay within RFC 7208 4.6.4's limits.
  const errors: string[] = [];
  if (records.length > 0) {
    const r = await evaluateSpf({
      sender: `postmaster@${e.zone}`,
      ip: PROBE_IP,
      helo: e.zone,
      mta: "edgefleet-verify",
      resolver: dns.resolve as never,
      maxElapsedTime: timeoutMs * 4,
    });
    const lookups = (r as { lookups?: { count?: number; void?: number; limit?: number } }).lookups ?? {};
    const verdict = r.status.result;
    details.push(`evaluation for ${PROBE_IP}: ${verdict}; DNS lookups ${lookups.count ?? 0}/${lookups.limit ?? 10}, void lookups ${lookups.void ?? 0}/2`);
    if (verdict === "temperror") errors.push(`SPF evaluation could not finish: ${r.status.comment ?? "temporary DNS error"}`);
    else if (verdict === "permerror") problems.push(permerrorText(r.status.comment ?? ""));
    else if (verdict !== "fail") problems.push(`SPF evaluation gives '${verdict}' for ${PROBE_IP}: the policy must end in '-all' (fail)`);
  }
  return result("spf", problems, details, errors);
}

/** mailauth's permerror comment ("... during lookup of <sender>: <why>") as a person's explanation. */
export function permerrorText(comment: string): string {
  const why = comment.slice(comment.lastIndexOf(": ") + 1).trim() || "invalid record";
  // RFC 7208 4.6.4: at most 10 terms that query DNS, at most 2 of them finding nothing.
  if (/too many dns requests/i.test(why)) return "SPF evaluation gives permerror: more than 10 DNS lookups (RFC 7208 4.6.4 allows 10 include/a/mx/ptr/exists/redirect)";
  if (/too many void/i.test(why)) return "SPF evaluation gives permerror: more than 2 void lookups (RFC 7208 4.6.4 allows 2 names that do not exist or have no record)";
  return `SPF evaluation gives permerror: ${why}`;
}

export function dmarcTags(record: string): Map<string, string> {
  const tags = new Map<string, string>();
  for (const part of record.split(";")) {
    const i = part.indexOf("=");
    if (i > 0) tags.set(part.slice(0, i).trim().toLowerCase(), part.slice(i + 1).trim());
  }
  return tags;
}

const POLICY_MEANING: Record<string, string> = {
  none: "receivers take no action on mail that fails DMARC",
  quarantine: "receivers only quarantine mail that fails DMARC",
};

export async function checkDmarc(dns: Dns, e: ZoneExpectation): Promise<CheckResult> {
  const name = `_dmarc.${e.zone}`;
  const a = await dns.txt(name);
  if (!a.ok) return unverified("dmarc", `TXT ${name}`, a);
  // RFC 7489 6.6.3: records not starting with v=DMARC1 are discarded; more than one means no policy.
  const records = a.records.filter((r) => /^v=DMARC1\s*(;|$)/.test(r));
  const details = records.map((r) => `DMARC: ${r}`);
  const problems: string[] = [];
  if (records.length === 0) problems.push(`no DMARC record at ${name} (${a.empty ?? "no v=DMARC1 TXT"}): receivers apply no policy`);
  else if (records.length > 1) problems.push(`${records.length} DMARC records at ${name}: receivers apply no policy (RFC 7489 6.6.3)`);
  else if (e.dmarc) {
    const got = dmarcTags(records[0]!);
    const want = dmarcTags(e.dmarc);
    for (const [tag, value] of want) {
      const seen = got.get(tag);
      if (tag === "v") continue;
      if (tag === "rua") {
        const set = (s: string | undefined) => (s ?? "").split(",").map((x) => x.trim().toLowerCase()).filter(Boolean).sort().join(",");
        if (set(seen) !== set(value)) problems.push(`rua=${seen ?? "(absent)"}; declared rua=${value}`);
      } else if (seen === undefined) {
        problems.push(`tag ${tag}= is absent; declared ${tag}=${value}`);
      } else if (seen.toLowerCase() !== value.toLowerCase()) {
        const why = (tag === "p" || tag === "sp") && POLICY_MEANING[seen.toLowerCase()] ? `: ${POLICY_MEANING[seen.toLowerCase()]}` : "";
        problems.push(`policy ${tag}=${seen}${why}; declared ${tag}=${value}`);
      }
    }
  }
  return result("dmarc", problems, details);
}

export async function checkDkim(dns: Dns, e: ZoneExpectation): Promise<CheckResult> {
  if (e.dkim.length === 0) return { check: "dkim", status: "skip", problems: [], details: ["no DKIM records declared"] };
  const problems: string[] = [];
  const errors: string[] = [];
  const details: string[] = [];
  for (const d of e.dkim) {
    const label = d.wildcard ? `DKIM wildcard (probed at ${d.query})` : `DKIM ${d.query}`;
    if (d.type === "CNAME") {
      const a = await dns.cname(d.query);
      if (!a.ok) errors.push(`${label}: ${a.error}`);
      else if (a.records.length === 0) problems.push(`${label}: no CNAME; declared ${d.content}`);
      else if (a.records[0]!.toLowerCase() !== d.content.toLowerCase()) problems.push(`${label}: CNAME ${a.records[0]}; declared ${d.content}`);
      else details.push(`${label}: CNAME ${a.records[0]}`);
      continue;
    }
    const a = await dns.txt(d.query);
    if (!a.ok) {
      errors.push(`${label}: ${a.error}`);
      continue;
    }
    const keys = a.records.filter((r) => /^v=DKIM1/i.test(r) || /(^|;)\s*p=/.test(r));
    if (keys.length === 0) problems.push(`${label}: no DKIM record; declared '${d.content}'`);
    else if (keys.length > 1) problems.push(`${label}: ${keys.length} DKIM records; declared one`);
    else if (norm(keys[0]!) !== norm(d.content)) {
      const short = (s: string) => (s.length > 60 ? `${s.slice(0, 57)}...` : s);
      problems.push(`${label}: '${short(keys[0]!)}'; declared '${short(d.content)}'`);
    } else details.push(`${label}: ${keys[0]!.length > 60 ? `${keys[0]!.slice(0, 57)}...` : keys[0]}`);
  }
  return result("dkim", problems, details, errors);
}

export async function checkReportAuth(dns: Dns, e: ZoneExpectation): Promise<CheckResult> {
  if (e.reportAuth.length === 0) return { check: "report-auth", status: "skip", problems: [], details: ["no reports to another fleet zone"] };
  const problems: string[] = [];
  const errors: string[] = [];
  const details: string[] = [];
  for (const name of e.reportAuth) {
    const a = await dns.txt(name);
    if (!a.ok) errors.push(`${name}: ${a.error}`);
    else if (!a.records.some((r) => /^v=DMARC1\s*(;|$)/.test(r))) {
      problems.push(`missing report authorisation ${name} TXT "v=DMARC1": receivers drop the aggregate reports (RFC 7489 7.1)`);
    } else details.push(`${name}: v=DMARC1`);
  }
  return result("report-auth", problems, details, errors);
}

export async function checkCaa(dns: Dns, e: ZoneExpectation): Promise<CheckResult> {
  const a = await dns.caa(e.zone);
  if (!a.ok) return unverified("caa", `CAA ${e.zone}`, a);
  const problems: string[] = [];
  const got = { issue: [] as string[], issuewild: [] as string[], iodef: [] as string[] };
  for (const r of a.records as CaaAnswer[]) {
    for (const tag of ["issue", "issuewild", "iodef"] as const) if (typeof r[tag] === "string") got[tag].push(r[tag]);
  }
  const details = (["issue", "issuewild", "iodef"] as const).map((t) => `${t}: ${got[t].join(", ") || "(none)"}`);
  if (a.records.length === 0) {
    problems.push("no CAA record: any CA may issue certificates for the zone");
    return result("caa", problems, details);
  }
  const cas = new Set<string>(CLOUDFLARE_CAS);
  for (const tag of ["issue", "issuewild"] as const) {
    const want = e.caa[tag];
    const have = got[tag].map((v) => v.split(";")[0]!.trim() || ";");
    // Cloudflare adds CAA for its own CAs on proxied zones whenever any CAA exists (FINDINGS.md).
    const extra = have.filter((v) => !want.includes(v) && !(e.proxied && cas.has(v)));
    const missing = want.filter((v) => !have.includes(v));
    if (e.proxied) {
      const blocked = missing.filter((v) => cas.has(v));
      if (blocked.length > 0) {
        problems.push(`CAA ${tag} blocks Cloudflare's CAs (${blocked.join(", ")} not allowed; only ${have.join(", ") || (tag === "issuewild" ? "what issue allows, RFC 8659 4.3" : "none")}): Cloudflare cannot issue the edge certificate`);
      }
      const other = missing.filter((v) => !cas.has(v));
      if (other.length > 0) problems.push(`CAA ${tag} lacks declared CA(s) ${other.join(", ")}`);
    } else if (missing.length > 0) {
      problems.push(`CAA ${tag} lacks ${missing.map((v) => (v === ";" ? "';' (no CA may issue)" : v)).join(", ")}`);
    }
    if (extra.length > 0) problems.push(`CAA ${tag} allows undeclared CA(s) ${extra.join(", ")}`);
  }
  const iodefMissing = e.caa.iodef.filter((v) => !got.iodef.includes(v));
  if (iodefMissing.length > 0) problems.push(`CAA iodef ${iodefMissing.join(", ")} is missing`);
  return result("caa", problems, details);
}

export interface ZoneResult {
  zone: string;
  profile: string;
  status: "pass" | "drift" | "error";
  checks: CheckResult[];
}

/** Every check of one zone, run together; the run bounds how many zones are in flight. */
export async function verifyZone(dns: Dns, e: ZoneExpectation, timeoutMs: number, fetchPolicy: PolicyFetcher): Promise<ZoneResult> {
  const mail = (check: CheckName, r: Awaited<ReturnType<typeof checkTlsRpt>>): CheckResult => ({ check, ...r });
  const checks = await Promise.all([
    checkMx(dns, e),
    checkSpf(dns, e, timeoutMs),
    checkDmarc(dns, e),
    checkDkim(dns, e),
    checkReportAuth(dns, e),
    checkCaa(dns, e),
    checkMtaSts(dns, e.zone, e.mtaSts, fetchPolicy).then((r) => mail("mta-sts", r)),
    checkTlsRpt(dns, e.zone, e.tlsRpt).then((r) => mail("tls-rpt", r)),
  ]);
  const status = checks.some((c) => c.status === "drift") ? "drift" : checks.some((c) => c.status === "error") ? "error" : "pass";
  return { zone: e.zone, profile: e.profile, status, checks };
}

export type { Answer };
