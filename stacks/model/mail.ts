// Mail facts of a zone beyond the apex posture (issue 15.5-15.6), as pure functions:
// MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) for zones that receive mail, the parked
// subdomain records for zones that send none, and the checks and findings they need.
// Used by posture.ts (records), workers.ts (the router's mta-sts custom domains), the
// sites build (the policy files in the content map), validation, the plan and verify.
import { createHash } from "node:crypto";
import { CLOUDFLARE_CAS, fqdn, hostnameProblem } from "./dns.ts";
// posture.ts imports this module too; the cycle is safe because nothing runs at load time.
import { expand } from "./posture.ts";
import type { FleetFile, Inventory, Profile, Provider, ZoneSpec } from "./schema.ts";

/** The policy host's label and the well-known path of the policy (RFC 8461 3.3). */
export const MTA_STS_LABEL = "mta-sts";
export const MTA_STS_PATH = "/.well-known/mta-sts.txt";
/** RFC 8461 3.2: the policy is served as text/plain. */
export const MTA_STS_CONTENT_TYPE = "text/plain; charset=utf-8";
/** Default mode of a zone that receives mail: report failures before refusing delivery. */
export const DEFAULT_MTA_STS_MODE = "testing";

export type MtaStsMode = "testing" | "enforce" | "none";

export interface MtaSts {
  zone: string;
  /** mta-sts.<zone>: the policy host, a custom domain of the router Worker. */
  host: string;
  mode: MtaStsMode;
  maxAge: number;
  /** The MX hosts senders may deliver to (RFC 8461 3.2 "mx"), in the provider's order. */
  mx: string[];
  /** The policy file's exact text (CRLF line ends). */
  policy: string;
  /** RFC 8461 3.1 id: 1-32 alphanumerics, changes whenever the policy text does. */
  id: string;
}

/**
 * The policy file (RFC 8461 3.2): `version` first, then mode, one `mx` line per host,
 * max_age. Lines end in CRLF: the section's prose says CRLF-separated, its ABNF
 * (sts-policy-term = LF / CRLF) accepts both, so CRLF satisfies every reader.
 */
export function mtaStsPolicy(mx: readonly string[], mode: MtaStsMode, maxAge: number): string {
  return ["version: STSv1", `mode: ${mode}`, ...mx.map((h) => `mx: ${h}`), `max_age: ${maxAge}`].map((l) => `${l}\r\n`).join("");
}

/**
 * The policy's id (RFC 8461 3.1, sts-id = 1*32(ALPHA / DIGIT)): 20 hex digits of the
 * SHA-256 of the policy text. It changes exactly when the policy does, is the same on
 * every machine that plans the fleet, and needs no clock or state.
 */
export function mtaStsId(policy: string): string {
  return createHash("sha256").update(policy).digest("hex").slice(0, 20);
}

/** The TXT record at _mta-sts (RFC 8461 3.1). */
export function mtaStsTxt(id: string): string {
  return `v=STSv1; id=${id}`;
}

/** The expanded MX hosts of a zone's provider (the same expansion posture.ts uses). */
function mxHosts(zone: ZoneSpec, provider: Provider): string[] {
  return [...provider.mx].sort((a, b) => a.priority - b.priority).map((m) => expand(m.host, zone));
}

export function mtaStsModeOf(profile: Profile, zone: ZoneSpec): MtaStsMode {
  return zone.overrides.mtaSts ?? profile.mtaSts ?? DEFAULT_MTA_STS_MODE;
}

/** A zone's MTA-STS, or undefined when it receives no mail (a null MX needs no policy). */
export function mtaStsOf(
  fleet: FleetFile,
  zone: ZoneSpec,
  profile: Profile,
  provider: Provider | undefined,
): MtaSts | undefined {
  if (!provider) return undefined;
  const mx = [...new Set(mxHosts(zone, provider))];
  const mode = mtaStsModeOf(profile, zone);
  const maxAge = fleet.mail.mtaSts.maxAge;
  const policy = mtaStsPolicy(mx, mode, maxAge);
  return { zone: zone.name, host: fqdn(MTA_STS_LABEL, zone.name), mode, maxAge, mx, policy, id: mtaStsId(policy) };
}

/** Where TLS reports go (RFC 8460 3): the fleet's TLS-RPT mailbox, else its DMARC mailbox. */
export function tlsRptRua(fleet: FleetFile): string[] {
  return fleet.mail.tlsrpt?.rua ?? [fleet.dmarc.rua];
}

/** The TXT record at _smtp._tls (RFC 8460 3): several URIs are comma-separated in one rua. */
export function tlsRptTxt(fleet: FleetFile): string {
  return `v=TLSRPTv1; rua=${tlsRptRua(fleet).join(",")}`;
}

/** Whether a CAA issue set lets every CA Cloudflare issues edge certificates from. */
export function allowsCloudflareCas(issuers: readonly string[]): boolean {
  return CLOUDFLARE_CAS.every((ca) => issuers.includes(ca));
}

// ------------------------------------------------------------ the zones that receive mail

/** Zones whose profile names a mail provider: they get MTA-STS, TLS-RPT and an mta-sts host. */
export function mailZones(inv: Pick<Inventory, "zones" | "profiles">): ZoneSpec[] {
  return inv.zones.filter((z) => {
    const p = inv.profiles.profiles[z.profile];
    return p !== undefined && p.mail !== "none" && inv.profiles.providers[p.mail] !== undefined;
  });
}

/** The policy hosts the router serves: mta-sts.<zone> of every zone that receives mail. */
export function mtaStsHosts(inv: Pick<Inventory, "zones" | "profiles">): Set<string> {
  return new Set(mailZones(inv).map((z) => fqdn(MTA_STS_LABEL, z.name)));
}

/** A file the content map holds that the inventory generates rather than fleet/sites. */
export interface GeneratedSiteFile {
  host: string;
  /** URL path, as URL.pathname spells it. */
  path: string;
  body: string;
  contentType: string;
  /** Revalidate at once: a sender that sees a new id must fetch the new policy, never a cached one. */
  cacheControl: string;
}

/**
 * The MTA-STS policy files the router serves, one per zone that receives mail; the
 * sites build adds them to the content map (scripts/lib/sites/build.ts).
 */
export function mtaStsSiteFiles(inv: Inventory): GeneratedSiteFile[] {
  const out: GeneratedSiteFile[] = [];
  for (const zone of mailZones(inv)) {
    const profile = inv.profiles.profiles[zone.profile]!;
    const sts = mtaStsOf(inv.fleet, zone, profile, inv.profiles.providers[profile.mail as string])!;
    out.push({ host: sts.host, path: MTA_STS_PATH, body: sts.policy, contentType: MTA_STS_CONTENT_TYPE, cacheControl: "public, max-age=0, must-revalidate" });
  }
  return out.sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
}

// ------------------------------------------------------------ checks

export interface MailProblem {
  file: "fleet" | "zones";
  path: (string | number)[];
  message: string;
}

/**
 * Problems validation reports for zones.yaml: values a provider takes from per-zone vars
 * (Microsoft 365's MX host and DKIM targets, copied from the admin centre) must be host
 * names; names the mail posture owns (mta-sts, a custom domain of the router; _mta-sts
 * and _smtp._tls) hold no extra records; a zone that sends no mail sets no MTA-STS mode.
 */
export function mailProblems(inv: Inventory): MailProblem[] {
  const out: MailProblem[] = [];
  inv.zones.forEach((zone, i) => {
    const profile = inv.profiles.profiles[zone.profile];
    if (!profile) return;
    const provider = profile.mail === "none" ? undefined : inv.profiles.providers[profile.mail];
    if (!provider) {
      if (zone.overrides.mtaSts) out.push({ file: "zones", path: ["zones", i, "overrides", "mtaSts"], message: `profile '${zone.profile}' receives no mail (null MX): MTA-STS does not apply` });
      return;
    }
    const hostValues: [string, string][] = [...provider.mx.map((m): [string, string] => [m.host, "MX host"]), ...provider.dkim.filter((d) => d.type === "CNAME").map((d): [string, string] => [d.value, `DKIM ${d.selector} target`])];
    for (const [template, what] of hostValues) {
      const value = expand(template, zone);
      const single = /^\$\{vars\.([a-zA-Z][a-zA-Z0-9]*)\}$/.exec(template)?.[1];
      // Only a value that is one var alone, copied whole: a template that builds a name
      // from the zone or vars is judged by checkVars (checks/limits.ts), which finds the
      // var or template to blame. Missing vars are reported by validate.ts.
      if (single === undefined || !(single in zone.vars)) continue;
      const p = hostnameProblem(value);
      if (p) out.push({ file: "zones", path: ["zones", i, "vars", single], message: `${provider.name} ${what} '${value}' is not a host name: ${p}` });
    }
    zone.records.forEach((r, j) => {
      if (r.name === MTA_STS_LABEL) {
        out.push({ file: "zones", path: ["zones", i, "records", j], message: `${fqdn(MTA_STS_LABEL, zone.name)} is the MTA-STS policy host: the router Worker serves it as a custom domain, which creates its own DNS record` });
      }
    });
  });
  const hosts = mtaStsHosts(inv);
  inv.fleet.workers.forEach((w, i) => {
    w.domains.forEach((h, j) => {
      if (hosts.has(h)) out.push({ file: "fleet", path: ["workers", i, "domains", j], message: `'${h}' is the MTA-STS policy host of its zone, served by the router` });
    });
    w.routes.forEach((r, j) => {
      if (hosts.has(r.slice(0, r.indexOf("/")))) out.push({ file: "fleet", path: ["workers", i, "routes", j], message: `'${r}' is on the MTA-STS policy host of its zone, served by the router` });
    });
  });
  return out;
}

// ------------------------------------------------------------ CAA and outside services (issue 15.5)

export interface CaaCnameFinding {
  zone: string;
  /** Owner names (relative) of CNAMEs to names outside the zone. */
  names: { name: string; target: string }[];
}

/**
 * Zones whose apex CAA lets no CA issue (`issue ";"`: web none, no overrides.caa) and
 * that CNAME a name to an outside service. A CA asked for a certificate for that name
 * follows the CNAME; when the target has no CAA of its own the search climbs the
 * original name to the apex (RFC 8659 3), finds `issue ";"` and refuses. If the service
 * serves HTTPS on the name, the fix is its CA under overrides.caa.issue. Names with a
 * leading underscore (DKIM selectors, _acme-challenge...) are not web hosts.
 */
export function caaBlockedCnames(inv: Pick<Inventory, "zones" | "profiles">): CaaCnameFinding[] {
  const out: CaaCnameFinding[] = [];
  for (const zone of inv.zones) {
    const profile = inv.profiles.profiles[zone.profile];
    if (!profile) continue;
    const web = zone.overrides.web ?? profile.web;
    if (web === "proxied" || (zone.overrides.caa?.issue?.length ?? 0) > 0) continue;
    const names = zone.records
      .flatMap((r) => (r.type === "CNAME" && !r.name.split(".").some((l) => l.startsWith("_")) ? [{ name: r.name, target: r.content }] : []))
      .filter((r) => r.target !== zone.name && !r.target.endsWith(`.${zone.name}`));
    if (names.length > 0) out.push({ zone: zone.name, names });
  }
  return out;
}
