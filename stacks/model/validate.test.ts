// Malformed inventories: each must be refused with a problem that names the file,
// the line and column, the field path and what is wrong. Every problem is reported
// at once, and none comes with a stack trace.
import { describe, expect, it } from "vitest";
import { formatProblem, type Problem } from "./load.ts";
import { FLEET, PROFILES, parseTexts, withZone, ZONES, type Texts } from "../../test/support/inventory.ts";

interface Case {
  title: string;
  texts: Texts;
  file: string;
  line: number;
  column?: number;
  path: string;
  message: RegExp;
}

// Added zones start on line 12 of zones.yaml (ZONES has 11 lines).
const cases: Case[] = [
  {
    title: "malformed YAML",
    texts: { zones: withZone("  - name: broken.example\n    profile: [parked\n") },
    file: "zones.yaml",
    line: 14,
    path: "",
    message: /^YAML: /,
  },
  {
    title: "a duplicate key in a YAML map",
    texts: { zones: withZone("  - name: dup.example\n    profile: parked\n    profile: web\n") },
    file: "zones.yaml",
    line: 14,
    path: "",
    message: /YAML: Map keys must be unique/,
  },
  {
    // zod's record would drop the profile without a word: the zones naming it would then
    // be refused as naming an unknown profile, pointing away from the cause.
    title: "a __proto__ key in a record (profiles.yaml's profiles)",
    texts: { profiles: `${PROFILES}  __proto__: { description: P, mail: none, web: none }\n` },
    file: "profiles.yaml",
    line: PROFILES.split("\n").length,
    column: 3,
    path: "profiles.__proto__",
    message: /a key may not be "__proto__"/,
  },
  {
    title: "a key written as an alias (here of __proto__): no key is an alias",
    texts: { profiles: `${PROFILES}  x: &k __proto__\n  *k : { description: P, mail: none, web: none }\n` },
    file: "profiles.yaml",
    line: PROFILES.split("\n").length + 1,
    column: 3,
    path: "profiles.*k",
    message: /a key may not be an alias/,
  },
  {
    title: "a __proto__ key in a list's item (a zone)",
    texts: { zones: withZone("  - name: p.example\n    profile: parked\n    __proto__: { ttl: 1 }\n") },
    file: "zones.yaml",
    line: 14,
    column: 5,
    path: "zones[3].__proto__",
    message: /a key may not be "__proto__"/,
  },
  {
    title: "an unknown top-level key in fleet.yaml",
    texts: { fleet: `${FLEET}defualts:\n  ttl: 300\n` },
    file: "fleet.yaml",
    line: 5,
    column: 1,
    path: "defualts",
    message: /unknown key 'defualts'/,
  },
  {
    title: "an unknown key in a zone",
    texts: { zones: withZone("  - name: k.example\n    profile: parked\n    proflie: web\n") },
    file: "zones.yaml",
    line: 14,
    column: 5,
    path: "zones[3].proflie",
    message: /unknown key 'proflie'/,
  },
  {
    title: "an unknown key in a record",
    texts: { zones: withZone("  - name: r.example\n    profile: parked\n    records:\n      - { type: A, name: www, content: 192.0.2.1, prio: 5 }\n") },
    file: "zones.yaml",
    line: 15,
    path: "zones[3].records[0].prio",
    message: /unknown key 'prio'/,
  },
  {
    title: "an invalid zone name",
    texts: { zones: withZone("  - name: bad_name..example\n    profile: parked\n") },
    file: "zones.yaml",
    line: 12,
    column: 11,
    path: "zones[3].name",
    message: /not a valid label/,
  },
  {
    title: "an uppercase zone name",
    texts: { zones: withZone("  - name: Shop.Example\n    profile: parked\n") },
    file: "zones.yaml",
    line: 12,
    path: "zones[3].name",
    message: /lowercase: use 'shop.example'/,
  },
  {
    title: "a zone name with a trailing dot",
    texts: { zones: withZone("  - name: shop.example.\n    profile: parked\n") },
    file: "zones.yaml",
    line: 12,
    path: "zones[3].name",
    message: /no trailing dot/,
  },
  {
    title: "a duplicate zone name",
    texts: { zones: withZone("  - name: site.example\n    profile: parked\n") },
    file: "zones.yaml",
    line: 12,
    path: "zones[3].name",
    message: /duplicate zone 'site.example' \(first at zones\[2\]\)/,
  },
  {
    title: "an unknown profile",
    texts: { zones: withZone("  - name: p.example\n    profile: parkd\n") },
    file: "zones.yaml",
    line: 13,
    column: 14,
    path: "zones[3].profile",
    message: /unknown profile 'parkd' \(profiles: parked, web/,
  },
  {
    title: "a missing profile",
    texts: { zones: withZone("  - name: p.example\n    tags: [x]\n") },
    file: "zones.yaml",
    line: 12,
    path: "zones[3].profile",
    message: /expected string, received undefined/,
  },
  {
    title: "a null MX beside another MX",
    texts: {
      zones: withZone(
        "  - name: m.example\n    profile: web\n    records:\n      - { type: MX, name: relay, priority: 0, content: . }\n      - { type: MX, name: relay, priority: 10, content: mx.m.example }\n",
      ),
    },
    file: "zones.yaml",
    line: 16,
    path: "zones[3].records[1]",
    message: /null MX must be the only MX at 'relay'/,
  },
  {
    title: "an MX beside the posture's null MX",
    texts: { zones: withZone("  - name: m.example\n    profile: parked\n    records:\n      - { type: MX, name: \"@\", priority: 10, content: mx.m.example }\n") },
    file: "zones.yaml",
    line: 15,
    path: "zones[3].records[0]",
    message: /collides with the managed posture record MX @ \(null MX/,
  },
  {
    title: "two SPF records at one name",
    texts: {
      zones: withZone(
        '  - name: s.example\n    profile: parked\n    records:\n      - { type: TXT, name: news, content: "v=spf1 include:mailgun.org -all" }\n      - { type: TXT, name: news, content: "v=spf1 include:sendgrid.net -all" }\n',
      ),
    },
    file: "zones.yaml",
    line: 16,
    path: "zones[3].records[1].content",
    message: /two SPF records at 'news'/,
  },
  {
    title: "an SPF record beside the managed SPF",
    texts: { zones: withZone('  - name: s.example\n    profile: web\n    records:\n      - { type: TXT, name: "@", content: "v=spf1 include:x.example -all" }\n') },
    file: "zones.yaml",
    line: 15,
    path: "zones[3].records[0]",
    message: /collides with the managed posture record TXT @ \(SPF -all/,
  },
  {
    title: "a CNAME beside other data",
    texts: {
      zones: withZone(
        "  - name: c.example\n    profile: parked\n    records:\n      - { type: A, name: www, content: 192.0.2.1 }\n      - { type: CNAME, name: www, content: host.other.example }\n",
      ),
    },
    file: "zones.yaml",
    line: 16,
    path: "zones[3].records[1]",
    message: /a CNAME cannot stand beside other data at 'www'/,
  },
  {
    title: "a CNAME at the apex beside the posture",
    texts: { zones: withZone('  - name: c.example\n    profile: parked\n    records:\n      - { type: CNAME, name: "@", content: host.other.example }\n') },
    file: "zones.yaml",
    line: 15,
    path: "zones[3].records[0]",
    message: /a CNAME cannot stand beside other data at '@'/,
  },
  {
    title: "an SPF record with more than 10 lookup terms",
    texts: {
      zones: withZone(
        `  - name: l.example\n    profile: parked\n    records:\n      - { type: TXT, name: news, content: "v=spf1 ${Array.from({ length: 11 }, (_, i) => `include:s${i}.example`).join(" ")} -all" }\n`,
      ),
    },
    file: "zones.yaml",
    line: 15,
    path: "zones[3].records[0].content",
    message: /11 DNS-lookup terms; RFC 7208 allows at most 10/,
  },
  {
    title: "SPF includes that push a mail zone past 10 lookups",
    texts: {
      zones: withZone(
        `  - name: l.example\n    profile: mail-fastmail\n    overrides:\n      spf:\n        include: [${Array.from({ length: 10 }, (_, i) => `"include:s${i}.example"`).join(", ")}]\n`,
      ),
    },
    file: "zones.yaml",
    line: 16,
    path: "zones[3].overrides.spf.include",
    message: /the zone's SPF has 11 DNS-lookup terms/,
  },
  {
    title: "a typographic dash in -all",
    texts: { zones: withZone('  - name: d.example\n    profile: parked\n    records:\n      - { type: TXT, name: news, content: "v=spf1 include:mailgun.org \u2013all" }\n') },
    file: "zones.yaml",
    line: 15,
    path: "zones[3].records[0].content",
    message: /typographic dash \(U\+2013\)/,
  },
  {
    title: "a typographic dash in an SPF term of a provider",
    texts: { profiles: PROFILES.replace('spf: ["include:spf.messagingengine.com"]', 'spf: ["\u2212include:spf.messagingengine.com"]') },
    file: "profiles.yaml",
    line: 22,
    path: "providers.fastmail.spf[0]",
    message: /typographic dash \(U\+2212\)/,
  },
  {
    title: "a DMARC rua that is not mailto:",
    texts: { fleet: FLEET.replace("mailto:dmarc@ops.example", "https://reports.example/dmarc") },
    file: "fleet.yaml",
    line: 2,
    column: 8,
    path: "dmarc.rua",
    message: /not a mailto: URI/,
  },
  {
    title: "a zone's extra DMARC rua that is not mailto:",
    texts: { zones: withZone("  - name: r.example\n    profile: parked\n    overrides:\n      dmarc:\n        rua: [dmarc@r.example]\n") },
    file: "zones.yaml",
    line: 16,
    path: "zones[3].overrides.dmarc.rua[0]",
    message: /not a mailto: URI/,
  },
  {
    title: "an invalid CAA tag",
    texts: { zones: withZone('  - name: a.example\n    profile: parked\n    records:\n      - { type: CAA, name: shop, tag: isue, value: "letsencrypt.org" }\n') },
    file: "zones.yaml",
    line: 15,
    path: "zones[3].records[0].tag",
    message: /'isue' is not a CAA property tag/,
  },
  {
    title: "an invalid CAA value",
    texts: { zones: withZone('  - name: a.example\n    profile: parked\n    records:\n      - { type: CAA, name: shop, tag: issue, value: "lets encrypt" }\n') },
    file: "zones.yaml",
    line: 15,
    path: "zones[3].records[0].value",
    message: /must name a CA domain/,
  },
  {
    title: "a CAA iodef that is neither mailto: nor https:",
    texts: { fleet: FLEET.replace("mailto:security@ops.example", "ftp://ops.example") },
    file: "fleet.yaml",
    line: 4,
    path: "caa.iodef",
    message: /must be a mailto: or https: URL/,
  },
  {
    title: "a record colliding with the managed DMARC record",
    texts: { zones: withZone('  - name: x.example\n    profile: web\n    records:\n      - { type: TXT, name: _dmarc, content: "v=DMARC1; p=none" }\n') },
    file: "zones.yaml",
    line: 15,
    path: "zones[3].records[0]",
    message: /collides with the managed posture record TXT _dmarc \(DMARC p=reject\)/,
  },
  {
    title: "a record colliding with a managed report authorisation",
    texts: {
      zones: ZONES.replace(
        "    profile: mail-fastmail\n",
        '    profile: mail-fastmail\n    records:\n      - { type: TXT, name: site.example._report._dmarc, content: "v=DMARC1; x" }\n',
      ),
    },
    file: "zones.yaml",
    line: 6,
    path: "zones[0].records[0]",
    message: /collides with the managed posture record TXT site.example._report._dmarc/,
  },
  {
    title: "an ignore rule covering a managed record",
    texts: { zones: withZone("  - name: i.example\n    profile: parked\n    ignore:\n      - { type: TXT, name: _dmarc }\n") },
    file: "zones.yaml",
    line: 15,
    path: "zones[3].ignore[0]",
    message: /would leave alone a record edgefleet manages: TXT _dmarc/,
  },
  {
    title: "an unknown record type",
    texts: { zones: withZone("  - name: t.example\n    profile: parked\n    records:\n      - { type: PTR, name: x, content: y.example }\n") },
    file: "zones.yaml",
    line: 15,
    path: "zones[3].records[0].type",
    message: /type must be one of A, AAAA, CNAME, MX, TXT, CAA, SRV/,
  },
  {
    title: "an invalid IPv4 address",
    texts: { zones: withZone("  - name: t.example\n    profile: parked\n    records:\n      - { type: A, name: x, content: 192.0.2.300 }\n") },
    file: "zones.yaml",
    line: 15,
    path: "zones[3].records[0].content",
    message: /not an IPv4 address/,
  },
  {
    title: "an invalid IPv6 address",
    texts: { zones: withZone('  - name: t.example\n    profile: parked\n    records:\n      - { type: AAAA, name: x, content: "2001:db8::1::2" }\n') },
    file: "zones.yaml",
    line: 15,
    path: "zones[3].records[0].content",
    message: /not an IPv6 address/,
  },
  {
    title: "proxied on a record type that cannot be proxied",
    texts: { zones: withZone('  - name: t.example\n    profile: parked\n    records:\n      - { type: TXT, name: x, content: "hello", proxied: true }\n') },
    file: "zones.yaml",
    line: 15,
    path: "zones[3].records[0].proxied",
    message: /unknown key 'proxied'/,
  },
  {
    title: "a TTL out of range",
    texts: { zones: withZone("  - name: t.example\n    profile: parked\n    overrides:\n      ttl: 30\n") },
    file: "zones.yaml",
    line: 15,
    path: "zones[3].overrides.ttl",
    message: /ttl is 1 \(automatic\) or 60-86400/,
  },
  {
    title: "a TTL of the wrong type",
    texts: { fleet: `${FLEET}defaults:\n  ttl: "an hour"\n` },
    file: "fleet.yaml",
    line: 6,
    path: "defaults.ttl",
    message: /expected number, received string/,
  },
  {
    title: "a fully qualified record name",
    texts: { zones: withZone("  - name: t.example\n    profile: parked\n    records:\n      - { type: A, name: www.t.example., content: 192.0.2.1 }\n") },
    file: "zones.yaml",
    line: 15,
    path: "zones[3].records[0].name",
    message: /relative to the zone/,
  },
  {
    title: "a profile's missing vars",
    texts: { zones: withZone("  - name: v.example\n    profile: mail-m365\n") },
    file: "zones.yaml",
    line: 12,
    path: "zones[3].vars",
    message: /profile 'mail-m365' needs vars: m365Dkim1, m365Dkim2, m365Mx/,
  },
  {
    title: "a profile naming an unknown provider",
    texts: { profiles: PROFILES.replace("mail: fastmail,", "mail: fastmale,") },
    file: "profiles.yaml",
    line: 30,
    path: "profiles.mail-fastmail.mail",
    message: /unknown mail provider 'fastmale'/,
  },
  {
    title: "an unknown placeholder in a provider template",
    texts: { profiles: PROFILES.replace("fm1.${zone}.dkim", "fm1.${domain}.dkim") },
    file: "profiles.yaml",
    line: 24,
    path: "providers.fastmail.dkim[0].value",
    message: /unknown placeholder \$\{domain\}/,
  },
  {
    title: "SPF includes on a zone that sends no mail",
    texts: { zones: withZone('  - name: n.example\n    profile: parked\n    overrides:\n      spf:\n        include: ["include:x.example"]\n') },
    file: "zones.yaml",
    line: 16,
    path: "zones[3].overrides.spf.include",
    message: /sends no mail/,
  },
  {
    title: "a zone id that is not 32 hex digits",
    texts: { zones: withZone("  - name: n.example\n    id: abc123\n    profile: parked\n") },
    file: "zones.yaml",
    line: 13,
    path: "zones[3].id",
    message: /32 lowercase hex digits/,
  },
  {
    title: "a null MX with a non-zero priority",
    texts: { zones: withZone("  - name: n.example\n    profile: web\n    records:\n      - { type: MX, name: relay, priority: 10, content: . }\n") },
    file: "zones.yaml",
    line: 15,
    path: "zones[3].records[0].priority",
    message: /null MX has priority 0/,
  },
  {
    title: "a duplicate record",
    texts: {
      zones: withZone("  - name: n.example\n    profile: parked\n    records:\n      - { type: A, name: x, content: 192.0.2.1 }\n      - { type: A, name: x, content: 192.0.2.1 }\n"),
    },
    file: "zones.yaml",
    line: 16,
    path: "zones[3].records[1]",
    message: /duplicate record A x 192.0.2.1/,
  },
  {
    title: "a zone id that YAML reads as a number",
    texts: { zones: withZone("  - name: n.example\n    id: 12345678901234567890123456789012\n    profile: parked\n") },
    file: "zones.yaml",
    line: 13,
    path: "zones[3].id",
    message: /quote the zone id/,
  },
  {
    title: "a zone pinned to an unknown shard",
    texts: { fleet: `${FLEET}stacks:\n  shards: [dns-a, dns-b]\n`, zones: withZone("  - name: s.example\n    profile: parked\n    shard: dns-c\n") },
    file: "zones.yaml",
    line: 14,
    path: "zones[3].shard",
    message: /unknown shard 'dns-c' \(fleet.yaml stacks.shards: dns-a, dns-b\)/,
  },
  {
    title: "duplicate shard names",
    texts: { fleet: `${FLEET}stacks:\n  shards: [dns-a, dns-a]\n` },
    file: "fleet.yaml",
    line: 6,
    path: "stacks.shards",
    message: /shard names must be unique/,
  },
  {
    title: "a guard share above 1",
    texts: { fleet: `${FLEET}guard:\n  maxFleetShare: 1.5\n` },
    file: "fleet.yaml",
    line: 6,
    path: "guard.maxFleetShare",
    message: /Too big/i,
  },
  {
    title: "zones that is not a list",
    texts: { zones: "zones:\n  name: x.example\n" },
    file: "zones.yaml",
    line: 2,
    path: "zones",
    message: /expected array/,
  },
];

function problemsOf(texts: Texts): Problem[] {
  const r = parseTexts(texts);
  if (r.ok) throw new Error("expected the inventory to be refused");
  return r.problems;
}

describe("inventory validation", () => {
  it("accepts the base fixture", () => {
    expect(parseTexts().ok).toBe(true);
  });

  it("has at least 25 malformed cases", () => {
    expect(cases.length).toBeGreaterThanOrEqual(25);
  });

  it.each(cases)("refuses $title with a located error", (c) => {
    const problems = problemsOf(c.texts);
    const hit = problems.find((p) => c.message.test(p.message));
    expect(hit, `problems were:\n${problems.map(formatProblem).join("\n")}`).toBeDefined();
    expect(hit!.file).toBe(c.file);
    expect(hit!.line).toBe(c.line);
    if (c.column !== undefined) expect(hit!.column).toBe(c.column);
    expect(hit!.path).toBe(c.path);
    expect(formatProblem(hit!)).not.toMatch(/\n\s+at /); // never a stack trace
  });

  it("reports every problem at once, across files, sorted by place", () => {
    const problems = problemsOf({
      fleet: FLEET.replace("mailto:dmarc@ops.example", "dmarc@ops.example"),
      zones: withZone("  - name: a.example\n    profile: nope\n  - name: B.example\n    profile: parked\n    colour: red\n"),
    });
    expect(problems.map((p) => `${p.file}:${p.line}`)).toEqual(["fleet.yaml:2", "zones.yaml:14", "zones.yaml:16"]);
  });

  it("formats a problem as file:line:column: path: message", () => {
    const [p] = problemsOf({ zones: withZone("  - name: p.example\n    profile: parkd\n") });
    expect(formatProblem(p!)).toBe("zones.yaml:13:14: zones[3].profile: unknown profile 'parkd' (profiles: parked, web, mail-google, mail-m365, mail-fastmail)");
  });

  it("accepts a non-SPF TXT at the apex beside the managed SPF", () => {
    const r = parseTexts({ zones: withZone('  - name: ok.example\n    profile: parked\n    records:\n      - { type: TXT, name: "@", content: "google-site-verification=abc" }\n') });
    expect(r.ok).toBe(true);
  });
});
