// Records that would defeat the email posture (issue 15 items 1, 2, 4): SPF that
// passes or neutralises everyone, wildcards and DKIM keys in zones that send no mail,
// a second or weaker DMARC, DMARC reports leaving the fleet, SPF that breaks RFC 7208,
// and ignore rules that would keep a rogue record of that kind alive.
import { fqdn, mailtoDomain, mailtoProblem } from "../dns.ts";
import { dmarcOf, EMPTY_DKIM, owningZone, type DnsRec } from "../posture.ts";
import type { CheckCtx, Path, ZoneCtx } from "./context.ts";
import { isDmarc, parseDmarc, reportUris, weakerThan } from "./dmarc.ts";
import { allQualifier, evaluateSpf, parseSpf } from "./spf.ts";

const isSpfText = (s: string) => /^v=spf1(\s|$)/i.test(s);
const labels = (name: string) => (name === "@" ? [] : name.split("."));

/** Where the zone's own SPF comes from in the inventory: its includes, else its profile. */
function postureSpfPath(z: ZoneCtx): Path {
  return z.zone.overrides.spf?.include?.length ? ["zones", z.index, "overrides", "spf", "include"] : ["zones", z.index, "profile"];
}

function checkSpf(ctx: CheckCtx, z: ZoneCtx, r: DnsRec): void {
  const content = r.content ?? "";
  const path = r.source === "extra" ? ctx.where(r, "content") : postureSpfPath(z);
  const owner = fqdn(r.name, r.zone);
  const parsed = parseSpf(content);
  if (parsed.problem) {
    // A provider's own terms are reported once, at the provider (checkProviders), not per zone.
    const fromProvider = r.source === "posture" && !z.zone.overrides.spf?.include?.length;
    if (!fromProvider) ctx.add("zones", path, `SPF at ${owner} is invalid (RFC 7208): ${parsed.problem}`);
    return;
  }
  const all = allQualifier(parsed);
  const redirect = parsed.terms.some((t) => t.name === "redirect");
  if (all === "+" || all === "?") {
    ctx.add("zones", path, `SPF '${all === "+" ? "+all" : "?all"}' at ${owner} lets anyone send as this name: end with '-all'`);
  } else if (all === "~" && !z.sendsMail) {
    ctx.add("zones", path, `SPF '~all' at ${owner}: profile '${z.zone.profile}' sends no mail, so SPF must end with '-all'`);
  } else if (all === undefined && !redirect) {
    ctx.add("zones", path, `SPF at ${owner} has neither 'all' nor 'redirect=': receivers treat the rest as '?all' (neutral)`);
  }
  const ev = evaluateSpf(owner, content, ctx.view);
  if (ev.problem) ctx.add("zones", path, `SPF at ${owner}: ${ev.problem}`);
  if (ev.lookups > 10) {
    const prefix = r.source === "extra" ? "SPF record has" : "the zone's SPF has";
    ctx.add("zones", path, `${prefix} ${ev.lookups} DNS-lookup terms; RFC 7208 allows at most 10 (includes inside the fleet are followed)`);
  }
  if (ev.voids > 2) ctx.add("zones", path, `SPF at ${owner} makes ${ev.voids} void lookups (names of the fleet with no answer); RFC 7208 4.6.4 allows at most 2`);
}

function reportDomainAllowed(ctx: CheckCtx, domain: string): boolean {
  if (owningZone(ctx.zoneNames, domain) !== undefined) return true;
  return (ctx.inv.fleet.dmarc.reportAllowlist ?? []).some((d) => domain === d || domain.endsWith(`.${d}`));
}

function outsideFleet(ctx: CheckCtx, uri: string): string | undefined {
  const domain = mailtoDomain(uri);
  if (reportDomainAllowed(ctx, domain)) return undefined;
  return `DMARC reports to ${uri} leave the fleet: ${domain} is not a zone of the inventory (add it to fleet.yaml dmarc.reportAllowlist if that is intended)`;
}

function checkDmarcRecords(ctx: CheckCtx, z: ZoneCtx): void {
  const byName = new Map<string, DnsRec[]>();
  for (const r of z.records) {
    if (r.type !== "TXT" || !isDmarc(r.content ?? "")) continue;
    const g = byName.get(r.name);
    if (g) g.push(r);
    else byName.set(r.name, [r]);
  }
  for (const [name, group] of byName) {
    // Records in inventory order; the check reads them all, so order cannot matter.
    const extras = group.filter((r) => r.source === "extra");
    if (extras.length === 0) continue; // the posture's own record alone: nothing to compare
    const own = parseDmarc(dmarcOf(ctx.inv.fleet, z.zone));
    if (group.length > 1) {
      for (const r of extras.length === group.length ? extras.slice(1) : extras) {
        ctx.add("zones", ctx.where(r, "content"), `a second DMARC record at '${name}': receivers ignore DMARC when a name has more than one (RFC 7489 6.6.3)`);
      }
    }
    for (const r of extras) {
      // '<zone>._report._dmarc[.sub]' holds report authorisations (RFC 7489 7.1), not policies.
      if (labels(name)[0] !== "_dmarc") {
        if (!labels(name).includes("_dmarc")) ctx.add("zones", ctx.where(r, "name"), `a DMARC record belongs at '_dmarc' or '_dmarc.<subdomain>', not at '${name}'`);
        continue;
      }
      const parsed = parseDmarc(r.content!);
      if (parsed.problem) {
        ctx.add("zones", ctx.where(r, "content"), `invalid DMARC record: ${parsed.problem}`);
        continue;
      }
      if (!parsed.tags.has("p")) {
        ctx.add("zones", ctx.where(r, "content"), "a DMARC record needs a policy ('p=reject')");
        continue;
      }
      const weak = weakerThan(parsed, own);
      if (weak) ctx.add("zones", ctx.where(r, "content"), `DMARC at ${fqdn(name, z.zone.name)} is weaker than the zone's own: ${weak}`);
      for (const tag of ["rua", "ruf"]) {
        for (const uri of reportUris(parsed.tags.get(tag))) {
          const p = mailtoProblem(uri) ?? outsideFleet(ctx, uri);
          if (p) ctx.add("zones", ctx.where(r, "content"), `${tag}: ${p}`);
        }
      }
    }
  }
}

/** A provider's SPF terms, read as the record they make with '-all'. */
function checkProviders(ctx: CheckCtx): void {
  for (const [key, provider] of Object.entries(ctx.inv.profiles.providers)) {
    const parsed = parseSpf(["v=spf1", ...provider.spf, "-all"].join(" "));
    if (parsed.problem) ctx.add("profiles", ["providers", key, "spf"], `SPF of provider '${provider.name}' is invalid (RFC 7208): ${parsed.problem}`);
  }
}

/** Item 1: records that would defeat a zone's posture. */
export function checkEmailPosture(ctx: CheckCtx): void {
  checkProviders(ctx);
  const rua = ctx.inv.fleet.dmarc.rua;
  const p = outsideFleet(ctx, rua);
  if (p) ctx.add("fleet", ["dmarc", "rua"], p);

  for (const z of ctx.zones) {
    z.zone.overrides.dmarc?.rua?.forEach((uri, k) => {
      const q = outsideFleet(ctx, uri);
      if (q) ctx.add("zones", ["zones", z.index, "overrides", "dmarc", "rua", k], q);
    });
    for (const r of z.records) {
      if (r.source === "report-auth") continue;
      if (r.type === "TXT" && isSpfText(r.content ?? "")) checkSpf(ctx, z, r);
      if (r.source !== "extra" || z.sendsMail) continue;
      const ls = labels(r.name);
      if (ls[0] === "*" && (r.type === "CNAME" || r.type === "TXT" || r.type === "MX")) {
        ctx.add(
          "zones",
          ctx.where(r, "name"),
          `a wildcard ${r.type} at '${r.name}' in a zone that sends no mail would answer for the SPF, DMARC and DKIM names of every subdomain that does not exist`,
        );
      }
      if (ls.includes("_domainkey") && (r.type === "CNAME" || (r.type === "TXT" && (r.content ?? "").replace(/\s/g, "") !== EMPTY_DKIM.replace(/\s/g, "")))) {
        ctx.add("zones", ctx.where(r), `a DKIM key record at '${r.name}' in a zone whose profile '${z.zone.profile}' sends no mail: it would let mail signed for this zone pass DKIM`);
      }
    }
    checkDmarcRecords(ctx, z);
  }
}

/** Item 2: ignore rules may not cover a managed posture name, nor shelter a record item 1 refuses. */
export function checkIgnoreRules(ctx: CheckCtx): void {
  for (const z of ctx.zones) {
    const managed = z.records.filter((r) => r.source !== "extra");
    z.zone.ignore.forEach((rule, j) => {
      const at: Path = ["zones", z.index, "ignore", j];
      const covers = (type: string) => rule.type === "*" || rule.type === type;
      const hit = managed.find((m) => covers(m.type) && m.name === rule.name);
      if (hit) {
        ctx.add("zones", at, `this rule would leave alone a record edgefleet manages: ${hit.type} ${hit.name} (${hit.what}); a rule may not cover a managed name, whatever its content glob`);
        return;
      }
      const ls = labels(rule.name);
      if (ls[0] === "_dmarc" && covers("TXT")) {
        ctx.add("zones", at, `this rule would shelter DMARC records at '${rule.name}' from validation; declare the record instead`);
      } else if (!z.sendsMail && ls[0] === "*" && (covers("TXT") || covers("MX") || covers("CNAME"))) {
        ctx.add("zones", at, `this rule would shelter a wildcard at '${rule.name}' in a zone that sends no mail`);
      } else if (!z.sendsMail && ls.includes("_domainkey") && (covers("TXT") || covers("CNAME"))) {
        ctx.add("zones", at, `this rule would shelter DKIM keys at '${rule.name}' in a zone that sends no mail`);
      }
    });
  }
}
