// Hostile inventories (issue 15 items 1-4 and 8): what a careless operator or a hostile
// pull request could write. Each must be refused with a located problem (file, line,
// field path), never a stack trace or a hang; the borderline cases that are legitimate
// are accepted, and their zone files load in a real DNS server (knot).
import { mkdtempSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { formatProblem, loadInventory, MAX_INVENTORY_FILE_BYTES, type Problem } from "../load.ts";
import { FLEET, PROFILES, parseTexts, withZone, ZONES, type Texts } from "../../../test/support/inventory.ts";

interface Case {
  title: string;
  texts: Texts;
  file: string;
  line: number;
  path: string;
  message: RegExp;
}

/** A zone after the fixture's three (it is zones[3] and starts on line 12). */
const zone = (name: string, profile: string, ...rest: string[]) => ({ zones: withZone([`  - name: ${name}`, `    profile: ${profile}`, ...rest, ""].join("\n")) });
/** A zone with records, one YAML flow map a line from line 15 on. */
const recs = (name: string, profile: string, ...records: string[]) => zone(name, profile, "    records:", ...records.map((r) => `      - ${r}`));
const ign = (name: string, profile: string, ...rules: string[]) => zone(name, profile, "    ignore:", ...rules.map((r) => `      - ${r}`));
const txt = (name: string, content: string) => `{ type: TXT, name: "${name}", content: ${JSON.stringify(content)} }`;
const outside = (n: number) => Array.from({ length: n }, (_, i) => `include:s${i}.vendor.example`).join(" ");
const KEY = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC1TaNgLlSyQMNWVLNLvyY/neDgaL2oqQE8T5illKqCgDtFHc8eHVAU+nlcaGmrKmDMw9dbgiGk1ocgZ56NR4ycfUHwQhvQPMUZw0cveel/8EAGoi/UyPmqfcPibytH81NFtTMAxUeM4Op8A6iHkvAMj5qLf4YRNsTkKAV";

const R = (i: number) => `zones[3].records[${i}]`;
/**
 * A provider whose host names are built from the zone's name and a tenant var, as the
 * Microsoft 365 templates were before its values became vars copied from the admin
 * centre: the limits must hold for any provider template a profiles.yaml may write.
 */
const TEMPLATED = PROFILES.replace('host: "${vars.m365Mx}"', 'host: "${zoneDashed}.mail.protection.outlook.com"')
  .replace('value: "${vars.m365Dkim1}"', 'value: "selector1-${zoneDashed}._domainkey.${vars.m365Tenant}.onmicrosoft.com"')
  .replace('value: "${vars.m365Dkim2}"', 'value: "selector2-${zoneDashed}._domainkey.${vars.m365Tenant}.onmicrosoft.com"');

const cases: Case[] = [
  // ------------------------------------------------ item 1: records that defeat the posture
  { title: "SPF +all at a subdomain", texts: recs("a.example", "parked", txt("news", "v=spf1 include:_spf.vendor.example +all")), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /'\+all' .* lets anyone send/ },
  { title: "SPF bare 'all' (a pass, like +all)", texts: recs("a.example", "parked", txt("news", "v=spf1 all")), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /'\+all'/ },
  { title: "SPF ?all", texts: recs("a.example", "mail-fastmail", txt("news", "v=spf1 ?all")), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /'\?all'/ },
  { title: "SPF ~all in a zone that sends no mail", texts: recs("a.example", "web", txt("news", "v=spf1 ~all")), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /'~all' .* sends no mail/ },
  { title: "SPF without all or redirect (neutral)", texts: recs("a.example", "mail-fastmail", txt("news", "v=spf1 ip4:192.0.2.1")), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /neither 'all' nor 'redirect='/ },
  { title: "a wildcard CNAME in a zone that sends no mail", texts: recs("a.example", "parked", "{ type: CNAME, name: '*', content: lb.vendor.example }"), file: "zones.yaml", line: 15, path: `${R(0)}.name`, message: /wildcard CNAME at '\*'/ },
  { title: "a wildcard TXT below a name in a no-mail zone", texts: recs("a.example", "web", txt("*.shop", "hello")), file: "zones.yaml", line: 15, path: `${R(0)}.name`, message: /wildcard TXT at '\*\.shop'/ },
  { title: "a wildcard MX in a no-mail zone", texts: recs("a.example", "parked", "{ type: MX, name: '*', priority: 10, content: mx.vendor.example }"), file: "zones.yaml", line: 15, path: `${R(0)}.name`, message: /wildcard MX/ },
  { title: "a DKIM key in a zone that sends no mail", texts: recs("a.example", "parked", txt("s1._domainkey", `v=DKIM1; k=rsa; p=${KEY}`)), file: "zones.yaml", line: 15, path: R(0), message: /DKIM key record at 's1\._domainkey'/ },
  { title: "a DKIM CNAME in a zone that sends no mail", texts: recs("a.example", "web", "{ type: CNAME, name: s1._domainkey.news, content: s1.dkim.vendor.example }"), file: "zones.yaml", line: 15, path: R(0), message: /DKIM key record/ },
  { title: "a second DMARC record at a subdomain's _dmarc", texts: recs("a.example", "parked", txt("_dmarc.news", "v=DMARC1; p=reject; adkim=s; aspf=s"), txt("_dmarc.news", "v=DMARC1; p=none")), file: "zones.yaml", line: 16, path: `${R(1)}.content`, message: /a second DMARC record at '_dmarc\.news'/ },
  { title: "a second DMARC record at the zone's _dmarc (written second, p=none)", texts: recs("a.example", "parked", txt("_dmarc", "v=DMARC1; p=none")), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /a second DMARC record at '_dmarc'/ },
  { title: "a subdomain DMARC with p=none", texts: recs("a.example", "parked", txt("_dmarc.news", "v=DMARC1; p=none; adkim=s; aspf=s")), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /weaker than the zone's own: p=none/ },
  { title: "a subdomain DMARC with sp=quarantine", texts: recs("a.example", "parked", txt("_dmarc.news", "v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=s")), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /sp=quarantine is weaker/ },
  { title: "a subdomain DMARC with relaxed alignment", texts: recs("a.example", "parked", txt("_dmarc.news", "v=DMARC1; p=reject")), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /adkim=r \(relaxed alignment\)/ },
  { title: "a subdomain DMARC with pct=10", texts: recs("a.example", "parked", txt("_dmarc.news", "v=DMARC1; p=reject; pct=10; adkim=s; aspf=s")), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /pct=10/ },
  { title: "a DMARC record outside _dmarc", texts: recs("a.example", "parked", txt("reports", "v=DMARC1; p=reject")), file: "zones.yaml", line: 15, path: `${R(0)}.name`, message: /belongs at '_dmarc'/ },
  { title: "a fleet rua outside the fleet", texts: { fleet: FLEET.replace("dmarc@ops.example", "dmarc@collector.vendor.example") }, file: "fleet.yaml", line: 2, path: "dmarc.rua", message: /leave the fleet: collector\.vendor\.example/ },
  { title: "a zone's rua override outside the fleet", texts: zone("a.example", "parked", "    overrides:", "      dmarc:", "        rua: [mailto:agg@vendor.example]"), file: "zones.yaml", line: 16, path: "zones[3].overrides.dmarc.rua[0]", message: /leave the fleet/ },
  { title: "a subdomain DMARC's ruf outside the fleet", texts: recs("a.example", "parked", txt("_dmarc.news", "v=DMARC1; p=reject; adkim=s; aspf=s; ruf=mailto:forensic@attacker.example")), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /ruf: DMARC reports to mailto:forensic@attacker\.example leave the fleet/ },
  // ------------------------------------------------ item 2: ignore rules cannot shelter a rogue record
  { title: "an ignore glob on _dmarc that keeps a p=none record alive", texts: ign("a.example", "parked", '{ type: TXT, name: _dmarc, content: "*p=none*" }'), file: "zones.yaml", line: 15, path: "zones[3].ignore[0]", message: /manages: TXT _dmarc .*whatever its content glob/ },
  { title: "an ignore rule on SPF at a managed name", texts: ign("a.example", "parked", '{ type: TXT, name: "@", content: "v=spf1 include:*" }'), file: "zones.yaml", line: 15, path: "zones[3].ignore[0]", message: /manages: TXT @/ },
  { title: "an ignore rule on MX at a null-MX name", texts: ign("a.example", "parked", '{ type: MX, name: "@", content: "10 *" }'), file: "zones.yaml", line: 15, path: "zones[3].ignore[0]", message: /manages: MX @/ },
  { title: "an ignore rule on the DKIM wildcard", texts: ign("a.example", "web", '{ type: TXT, name: "*._domainkey", content: "v=DKIM1; k=rsa; p=M*" }'), file: "zones.yaml", line: 15, path: "zones[3].ignore[0]", message: /manages: TXT \*\._domainkey/ },
  { title: "an ignore rule of every type at the apex", texts: ign("a.example", "parked", '{ type: "*", name: "@" }'), file: "zones.yaml", line: 15, path: "zones[3].ignore[0]", message: /manages: \w+ @/ },
  { title: "an ignore rule on a subdomain's _dmarc", texts: ign("a.example", "parked", "{ type: TXT, name: _dmarc.news }"), file: "zones.yaml", line: 15, path: "zones[3].ignore[0]", message: /shelter DMARC records at '_dmarc\.news'/ },
  { title: "an ignore rule on a wildcard in a no-mail zone", texts: ign("a.example", "parked", "{ type: CNAME, name: '*' }"), file: "zones.yaml", line: 15, path: "zones[3].ignore[0]", message: /shelter a wildcard/ },
  { title: "an ignore rule on DKIM keys in a no-mail zone", texts: ign("a.example", "parked", "{ type: TXT, name: s1._domainkey }"), file: "zones.yaml", line: 15, path: "zones[3].ignore[0]", message: /shelter DKIM keys/ },
  // ------------------------------------------------ item 3: what a DNS server or Cloudflare would refuse
  { title: "an owner name over 255 octets", texts: recs("a.example", "parked", `{ type: A, name: ${["a", "b", "c", "d"].map((c) => c.repeat(62)).join(".")}, content: 192.0.2.1 }`), file: "zones.yaml", line: 15, path: `${R(0)}.name`, message: /octets on the wire; DNS allows 255/ },
  { title: "a report authorisation name over 255 octets", texts: zone(`${["a", "b", "c"].map((c) => c.repeat(63)).join(".")}.${"d".repeat(30)}.example`, "parked"), file: "zones.yaml", line: 12, path: "zones[3].name", message: /octets on the wire; DNS allows 255/ },
  { title: "a label over 63 octets", texts: recs("a.example", "parked", `{ type: A, name: ${"x".repeat(64)}, content: 192.0.2.1 }`), file: "zones.yaml", line: 15, path: `${R(0)}.name`, message: /not a valid name label/ },
  { title: "a ${zoneDashed} host label over 63 octets", texts: { ...zone(`${"m".repeat(40)}.${"n".repeat(30)}.example`, "mail-m365", "    vars: { m365Tenant: contoso }"), profiles: TEMPLATED }, file: "zones.yaml", line: 13, path: "zones[3].profile", message: /MX host of 'Microsoft 365' .*'m{40}-n{30}-example' is not a valid host name label/ },
  { title: "TXT content over Cloudflare's limit counted in bytes", texts: recs("a.example", "parked", txt("blob", "\u00e9".repeat(2100))), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /4200 bytes .*Cloudflare accepts at most 4096/ },
  { title: "TXT records at one name over 8,192 bytes together", texts: recs("a.example", "parked", txt("blob", "a".repeat(3000)), txt("blob", "b".repeat(3000)), txt("blob", "c".repeat(3000))), file: "zones.yaml", line: 15, path: R(0), message: /together hold 9000 bytes/ },
  { title: "a quote in a CAA value", texts: recs("a.example", "parked", `{ type: CAA, name: "@", tag: issue, value: 'letsencrypt.org; accounturi="x"' }`), file: "zones.yaml", line: 15, path: `${R(0)}.value`, message: /contains "\\"/ },
  { title: "a quote in the fleet's iodef", texts: { fleet: FLEET.replace("iodef: mailto:security@ops.example", `iodef: 'https://ops.example/r"x'`) }, file: "fleet.yaml", line: 4, path: "caa.iodef", message: /CAA iodef value contains/ },
  { title: "a non-ASCII character in the fleet's iodef", texts: { fleet: FLEET.replace("iodef: mailto:security@ops.example", "iodef: https://ops.example/r\u00e9port") }, file: "fleet.yaml", line: 4, path: "caa.iodef", message: /only printable ASCII/ },
  { title: "a DKIM var that is not a DKIM key", texts: zone("a.example", "mail-google", '    vars: { googleDkim: "v=DKIM1; p=not base64!" }'), file: "zones.yaml", line: 14, path: "zones[3].vars.googleDkim", message: /not base64/ },
  { title: "a DKIM var with v= not first", texts: zone("a.example", "mail-google", `    vars: { googleDkim: "k=rsa; v=DKIM1; p=${KEY}" }`), file: "zones.yaml", line: 14, path: "zones[3].vars.googleDkim", message: /v=DKIM1 must come first/ },
  { title: "a tenant var that is not a host label", texts: { ...zone("a.example", "mail-m365", '    vars: { m365Tenant: "evil tenant" }'), profiles: TEMPLATED }, file: "zones.yaml", line: 14, path: "zones[3].vars.m365Tenant", message: /DKIM selector1 .* not a valid host name label/ },
  { title: "an MX target that is an IP literal", texts: recs("a.example", "mail-fastmail", "{ type: MX, name: shop, priority: 10, content: 192.0.2.25 }"), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /'192\.0\.2\.25' is an IP address/ },
  { title: "a CNAME target that is an IP literal", texts: recs("a.example", "parked", "{ type: CNAME, name: www, content: 10.0.0.1 }"), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /is an IP address/ },
  { title: "a CNAME loop inside a zone", texts: recs("a.example", "parked", "{ type: CNAME, name: www, content: web.a.example }", "{ type: CNAME, name: web, content: www.a.example }"), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /CNAME loop inside the fleet: www\.a\.example -> web\.a\.example -> www\.a\.example/ },
  { title: "a CNAME that points at itself", texts: recs("a.example", "parked", "{ type: CNAME, name: www, content: www.a.example }"), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /CNAME loop/ },
  { title: "a zone that is a public suffix", texts: zone("co.uk", "parked"), file: "zones.yaml", line: 12, path: "zones[3].name", message: /'co\.uk' is a public suffix/ },
  { title: "a zone that is a private public suffix", texts: zone("github.io", "parked"), file: "zones.yaml", line: 12, path: "zones[3].name", message: /'github\.io' is a public suffix .*private/ },
  { title: "a zone with invalid punycode", texts: zone("xn--zz.example", "parked"), file: "zones.yaml", line: 12, path: "zones[3].name", message: /'xn--zz' is not valid punycode/ },
  { title: "a record name with invalid punycode", texts: recs("a.example", "parked", "{ type: A, name: xn--a, content: 192.0.2.1 }"), file: "zones.yaml", line: 15, path: `${R(0)}.name`, message: /'xn--a' is not valid punycode/ },
  { title: "a CNAME target with invalid punycode", texts: recs("a.example", "parked", "{ type: CNAME, name: www, content: xn--a.vendor.example }"), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /not valid punycode/ },
  // ------------------------------------------------ item 4: SPF by its grammar
  { title: "an SPF term that is no mechanism", texts: recs("a.example", "mail-fastmail", txt("news", "v=spf1 inclde:_spf.vendor.example -all")), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /'inclde:_spf\.vendor\.example' is not an SPF mechanism/ },
  { title: "an SPF ip4 CIDR over /32", texts: recs("a.example", "mail-fastmail", txt("news", "v=spf1 ip4:192.0.2.0/33 -all")), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /CIDR length '\/33' must be 0-32/ },
  { title: "an SPF ip6 that is no address", texts: recs("a.example", "mail-fastmail", txt("news", "v=spf1 ip6:2001:db8::zz -all")), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /needs an IPv6 address/ },
  { title: "an SPF include without a domain", texts: recs("a.example", "mail-fastmail", txt("news", "v=spf1 include:localhost -all")), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /not a domain name/ },
  { title: "SPF redirect beside all", texts: recs("a.example", "mail-fastmail", txt("news", "v=spf1 mx redirect=_spf.vendor.example -all")), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /'redirect=' beside 'all'/ },
  { title: "SPF terms after all", texts: recs("a.example", "mail-fastmail", txt("news", "v=spf1 -all include:_spf.vendor.example")), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /comes after 'all'/ },
  { title: "SPF redirect twice", texts: recs("a.example", "mail-fastmail", txt("news", "v=spf1 redirect=a.vendor.example redirect=b.vendor.example")), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /appears twice/ },
  { title: "an SPF include loop inside the fleet", texts: recs("a.example", "mail-fastmail", txt("news", "v=spf1 include:_spf.a.example -all"), txt("_spf", "v=spf1 include:news.a.example -all")), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /SPF include loop: news\.a\.example -> _spf\.a\.example -> news\.a\.example/ },
  { title: "more than 10 lookups through an include inside the fleet", texts: recs("a.example", "mail-fastmail", txt("news", `v=spf1 ${outside(5)} include:_spf.a.example -all`), txt("_spf", `v=spf1 ${outside(6)} -all`)), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /SPF record has 12 DNS-lookup terms/ },
  { title: "an SPF include of a fleet name with no SPF", texts: recs("a.example", "mail-fastmail", txt("news", "v=spf1 include:nothing.a.example -all")), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /nothing\.a\.example, which has no SPF record in the fleet/ },
  { title: "more than 2 void lookups", texts: recs("a.example", "mail-fastmail", txt("news", "v=spf1 a:n1.a.example a:n2.a.example mx:n3.a.example -all")), file: "zones.yaml", line: 15, path: `${R(0)}.content`, message: /3 void lookups/ },
  { title: "a provider SPF term with a bad CIDR, through the zone's SPF", texts: zone("a.example", "mail-fastmail", "    overrides:", "      spf:", '        include: ["ip4:10.0.0.0/40"]'), file: "zones.yaml", line: 16, path: "zones[3].overrides.spf.include", message: /CIDR length '\/40'/ },
  { title: "a provider SPF term with a bad CIDR, at the provider", texts: { profiles: PROFILES.replace('spf: ["include:spf.messagingengine.com"]', 'spf: ["include:spf.messagingengine.com", "ip6:2001:db8::/129"]') }, file: "profiles.yaml", line: 22, path: "providers.fastmail.spf", message: /SPF of provider 'Fastmail' is invalid .*0-128/ },
  // ------------------------------------------------ item 8: hostile YAML
  {
    title: "a YAML alias bomb",
    texts: { zones: `${ZONES}  - name: bomb.example\n    profile: parked\n    tags: &a [x, x, x, x, x, x, x, x, x, x]\n    vars: { a: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a] }\n    comment: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n` },
    file: "zones.yaml",
    line: 15,
    path: "",
    message: /too many YAML alias expansions/,
  },
  { title: "an inventory file over the size limit", texts: { profiles: `${PROFILES}# ${"x".repeat(MAX_INVENTORY_FILE_BYTES)}\n` }, file: "profiles.yaml", line: 1, path: "", message: /limited to \d+ bytes/ },
];

function problemsOf(texts: Texts): Problem[] {
  const r = parseTexts(texts);
  if (r.ok) throw new Error("expected the inventory to be refused");
  return r.problems;
}

describe("hostile inventories", () => {
  it("has at least 40 cases", () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
  });

  it.each(cases)("refuses $title with a located error", (c) => {
    const problems = problemsOf(c.texts);
    const hit = problems.find((p) => c.message.test(p.message));
    expect(hit, `problems were:\n${problems.map(formatProblem).join("\n")}`).toBeDefined();
    expect({ file: hit!.file, line: hit!.line, path: hit!.path }).toEqual({ file: c.file, line: c.line, path: c.path });
    for (const p of problems) expect(formatProblem(p)).not.toMatch(/\n\s+at /); // never a stack trace
  });

  it("refuses an inventory file over the size limit on disk before reading it", () => {
    const dir = mkdtempSync(join(tmpdir(), "edgefleet-huge-"));
    writeFileSync(join(dir, "fleet.yaml"), FLEET);
    writeFileSync(join(dir, "profiles.yaml"), PROFILES);
    writeFileSync(join(dir, "zones.yaml"), ZONES);
    truncateSync(join(dir, "zones.yaml"), MAX_INVENTORY_FILE_BYTES + 1); // sparse: no 16 MiB written
    const r = loadInventory(dir, dir);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems.map(formatProblem)).toEqual([`zones.yaml:1:1: the file is ${MAX_INVENTORY_FILE_BYTES + 1} bytes; inventory files are limited to ${MAX_INVENTORY_FILE_BYTES} bytes (split the inventory or raise MAX_INVENTORY_FILE_BYTES)`]);
  });
});
