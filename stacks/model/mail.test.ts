// Issue 15.5-15.6: subdomains of zones that send no mail are covered, and zones that
// receive mail publish MTA-STS (RFC 8461) and TLS-RPT (RFC 8460). Each defect the
// issue names is a case here.
import { describe, expect, it } from "vitest";
import { FLEET, inventory, parseTexts, withZone } from "../../test/support/inventory.ts";
import { formatProblem } from "./load.ts";
import { MTA_STS_PATH, mtaStsId, mtaStsPolicy, mtaStsSiteFiles } from "./mail.ts";
import { fleetRecords, rdata } from "./posture.ts";
import { validateInventory } from "./validate.ts";
import { deriveDesiredState } from "./desired.ts";
import { findings } from "./summary.ts";

const M365_VARS = "{ m365Mx: m-ex01.mail.protection.outlook.com, m365Dkim1: s1.m.onmicrosoft.com, m365Dkim2: s2.m.onmicrosoft.com }";

function recs(zones: string, zone: string, fleet?: string) {
  return fleetRecords(inventory({ zones, ...(fleet ? { fleet } : {}) })).get(zone) ?? [];
}
function lines(zones: string, zone: string, fleet?: string): string[] {
  return recs(zones, zone, fleet).map((r) => `${r.type} ${r.name} ${rdata(r)}`).sort();
}
function problems(zones: string, fleet?: string): string[] {
  const r = parseTexts({ zones, ...(fleet ? { fleet } : {}) });
  return r.ok ? validateInventory(r.inventory).map((p) => `${p.path.join(".")}: ${p.message}`) : r.problems.map(formatProblem);
}

describe("subdomains of a zone that sends no mail (M3AAWG / NCSC parked-domain practice)", () => {
  it("get a null MX and SPF -all for every name that does not exist (wildcard)", () => {
    const got = lines(withZone("  - name: p.example\n    profile: parked\n"), "p.example");
    expect(got).toContain("MX * 0 .");
    expect(got).toContain("TXT * v=spf1 -all");
  });

  it("get them at every name that holds an address record, because a wildcard never covers a name that exists", () => {
    const z = "  - name: p.example\n    profile: parked\n    records:\n      - { type: A, name: legacy, content: 192.0.2.5 }\n      - { type: AAAA, name: a.b, content: \"2001:db8::1\" }\n      - { type: CNAME, name: status, content: status.vendor.example }\n      - { type: TXT, name: notes, content: hello }\n";
    const got = lines(withZone(z), "p.example");
    for (const name of ["legacy", "a.b"]) {
      expect(got).toContain(`MX ${name} 0 .`);
      expect(got).toContain(`TXT ${name} v=spf1 -all`);
    }
    // A CNAME owner can hold nothing else (its target's records answer); a TXT-only name has no address.
    expect(got.filter((l) => / (status|notes) /.test(l) && !l.startsWith("CNAME") && !l.includes("hello"))).toEqual([]);
    expect(problems(withZone(z))).toEqual([]);
  });

  it("a proxied web zone covers www (its address name) too", () => {
    const got = lines(withZone("  - name: w.example\n    profile: web\n"), "w.example");
    expect(got).toEqual(expect.arrayContaining(["MX www 0 .", "TXT www v=spf1 -all", "MX * 0 .", "TXT * v=spf1 -all"]));
  });

  it("refuses a wildcard of the zone's own that would answer for mail, and treats any other record at '*' like an address name", () => {
    // A CNAME, TXT or MX at '*' would replace the posture's denials for every name that
    // does not exist: validation refuses them (checks/email.ts), so the posture never yields '*'.
    const own = (rec: string) => withZone(`  - name: p.example\n    profile: parked\n    records:\n      - ${rec}\n`);
    expect(problems(own('{ type: CNAME, name: "*", content: parking.vendor.example }'))).toEqual([
      "zones.yaml:15:30: zones[3].records[0].name: a wildcard CNAME at '*' in a zone that sends no mail would answer for the SPF, DMARC and DKIM names of every subdomain that does not exist",
    ]);
    expect(problems(own('{ type: MX, name: "*", priority: 10, content: catchall.vendor.example }'))).toEqual([
      "zones.yaml:15:27: zones[3].records[0].name: a wildcard MX at '*' in a zone that sends no mail would answer for the SPF, DMARC and DKIM names of every subdomain that does not exist",
    ]);
    const a = own('{ type: A, name: "*", content: 192.0.2.9 }');
    expect(lines(a, "p.example").filter((l) => / \* /.test(l))).toEqual(["A * 192.0.2.9", "MX * 0 .", "TXT * v=spf1 -all"]);
    expect(problems(a)).toEqual([]);
    // A record at '*' that says nothing about mail must not switch the wildcard off.
    const caa = own('{ type: CAA, name: "*", tag: issue, value: letsencrypt.org }');
    expect(lines(caa, "p.example").filter((l) => / \* /.test(l))).toEqual(['CAA * 0 issue "letsencrypt.org"', "MX * 0 .", "TXT * v=spf1 -all"]);
    expect(problems(caa)).toEqual([]);
  });

  it("keeps a name's own MX or SPF instead of adding a second one (null-mx-alone, one SPF per name)", () => {
    const z = withZone(
      "  - name: p.example\n    profile: parked\n    records:\n      - { type: A, name: app, content: 192.0.2.5 }\n      - { type: MX, name: app, priority: 10, content: mx.vendor.example }\n      - { type: TXT, name: app, content: \"v=spf1 include:vendor.example -all\" }\n      - { type: TXT, name: app, content: \"site-verification=1\" }\n",
    );
    const app = lines(z, "p.example").filter((l) => / app /.test(l));
    expect(app).toEqual(["A app 192.0.2.5", "MX app 10 mx.vendor.example.", "TXT app site-verification=1", "TXT app v=spf1 include:vendor.example -all"]);
    expect(problems(z)).toEqual([]);
  });

  it("lets a verification TXT stand beside the managed SPF of an address name", () => {
    const z = withZone("  - name: w.example\n    profile: web\n    records:\n      - { type: TXT, name: www, content: \"google-site-verification=abc\" }\n");
    expect(problems(z)).toEqual([]);
    expect(lines(z, "w.example").filter((l) => l.startsWith("TXT www"))).toEqual(["TXT www google-site-verification=abc", "TXT www v=spf1 -all"]);
  });

  it("lets a name's own SPF replace the posture's, so no name ever has two", () => {
    const z = withZone("  - name: w.example\n    profile: web\n    records:\n      - { type: TXT, name: www, content: \"v=spf1 a -all\" }\n");
    // www's own SPF replaces the posture's (no clash); the wildcard's stays, alone at '*'.
    expect(problems(z)).toEqual([]);
    const got = lines(z, "w.example");
    expect(got.filter((l) => l.startsWith("TXT www"))).toEqual(["TXT www v=spf1 a -all"]);
    expect(got.filter((l) => l.startsWith("TXT * "))).toEqual(["TXT * v=spf1 -all"]);
  });

  it("refuses an ignore rule on a name the posture writes, instead of yielding to it (issue 15 item 2)", () => {
    // Were the posture to yield, a rule on TXT at an address name would shelter an
    // out-of-band 'v=spf1 +all' there, and one at '*' every subdomain's SPF.
    const z = (rules: string[]) => withZone(`  - name: p.example\n    profile: parked\n    records:\n      - { type: A, name: old, content: 192.0.2.5 }\n    ignore:\n${rules.map((r) => `      - ${r}\n`).join("")}`);
    expect(problems(z(['{ type: "*", name: "*" }', "{ type: TXT, name: old }", '{ type: MX, name: old, content: "10 *" }']))).toEqual([
      "zones.yaml:17:9: zones[3].ignore[0]: this rule would leave alone a record edgefleet manages: MX * (null MX for every name that does not exist (wildcard): accepts no mail); a rule may not cover a managed name, whatever its content glob",
      "zones.yaml:18:9: zones[3].ignore[1]: this rule would leave alone a record edgefleet manages: TXT old (SPF -all at a name with an address record: sends no mail); a rule may not cover a managed name, whatever its content glob",
      "zones.yaml:19:9: zones[3].ignore[2]: this rule would leave alone a record edgefleet manages: MX old (null MX at a name with an address record: accepts no mail); a rule may not cover a managed name, whatever its content glob",
    ]);
    // A rule on a type the posture does not write there is accepted, and changes nothing.
    const a = z(['{ type: A, name: "*" }', "{ type: CAA, name: old }"]);
    expect(problems(a)).toEqual([]);
    expect(lines(a, "p.example").filter((l) => / (\*|old) /.test(l))).toEqual(["A old 192.0.2.5", "MX * 0 .", "MX old 0 .", "TXT * v=spf1 -all", "TXT old v=spf1 -all"]);
  });

  it("gives mail zones no wildcard (their subdomains are theirs to use)", () => {
    const got = lines(withZone(`  - name: m.example\n    profile: mail-m365\n    vars: ${M365_VARS}\n`), "m.example");
    expect(got.some((l) => / \* /.test(l))).toBe(false);
  });
});

describe("MTA-STS (RFC 8461) for zones that receive mail", () => {
  const zone = `  - name: m.example\n    profile: mail-m365\n    vars: ${M365_VARS}\n`;

  it("the policy file: version first, mode, one mx line per MX host, max_age; CRLF line ends", () => {
    expect(mtaStsPolicy(["a.example", "b.example"], "enforce", 604800)).toBe("version: STSv1\r\nmode: enforce\r\nmx: a.example\r\nmx: b.example\r\nmax_age: 604800\r\n");
  });

  it("publishes _mta-sts with an id of 1-32 alphanumerics that is the policy's own hash", () => {
    const inv = inventory({ zones: withZone(zone) });
    const [file] = mtaStsSiteFiles(inv);
    expect(file).toEqual({ host: "mta-sts.m.example", path: MTA_STS_PATH, contentType: "text/plain; charset=utf-8", cacheControl: "public, max-age=0, must-revalidate", body: "version: STSv1\r\nmode: testing\r\nmx: m-ex01.mail.protection.outlook.com\r\nmax_age: 604800\r\n" });
    const txt = fleetRecords(inv).get("m.example")!.find((r) => r.name === "_mta-sts")!;
    expect(txt.content).toMatch(/^v=STSv1; id=[A-Za-z0-9]{1,32}$/);
    expect(txt.content).toBe(`v=STSv1; id=${mtaStsId(file!.body)}`);
  });

  it("changes the id when the policy changes (mode, MX, max_age), and only then", () => {
    const id = (zones: string, fleet?: string) => recs(zones, "m.example", fleet).find((r) => r.name === "_mta-sts")!.content;
    const base = id(withZone(zone));
    expect(id(withZone(`${zone}    overrides: { mtaSts: enforce }\n`))).not.toBe(base);
    expect(id(withZone(zone.replace("m-ex01", "m-ex02")))).not.toBe(base);
    expect(id(withZone(zone), `${FLEET}mail:\n  mtaSts: { maxAge: 86400 }\n`)).not.toBe(base);
    // Not on changes the policy does not carry.
    expect(id(withZone(`${zone}    overrides: { ttl: 600 }\n`))).toBe(base);
    expect(id(withZone(zone.replace("s1.m.onmicrosoft.com", "s9.m.onmicrosoft.com")))).toBe(base);
  });

  it("lists every MX host of the provider, lowest priority first", () => {
    const inv = inventory({ zones: withZone("  - name: f.example\n    profile: mail-fastmail\n") });
    expect(mtaStsSiteFiles(inv).find((f) => f.host === "mta-sts.f.example")!.body).toContain("mx: in1-smtp.messagingengine.com\r\nmx: in2-smtp.messagingengine.com\r\n");
  });

  it("lets Cloudflare's CAs issue the policy host's certificate where the apex CAA forbids issuance", () => {
    const got = lines(withZone(zone), "m.example");
    expect(got).toContain('CAA @ 0 issue ";"');
    const sts = got.filter((l) => l.startsWith("CAA mta-sts "));
    expect(sts).toEqual(
      ['CAA mta-sts 0 iodef "mailto:security@ops.example"', 'CAA mta-sts 0 issue "letsencrypt.org"', 'CAA mta-sts 0 issue "pki.goog"', 'CAA mta-sts 0 issue "sectigo.com"', 'CAA mta-sts 0 issue "ssl.com"', 'CAA mta-sts 0 issuewild ";"'],
    );
  });

  it("needs no CAA at mta-sts when the apex already lets Cloudflare's CAs issue", () => {
    const got = lines(withZone(`${zone}    overrides: { web: proxied }\n`), "m.example");
    expect(got.filter((l) => l.startsWith("CAA mta-sts"))).toEqual([]);
  });

  it("gives zones that send no mail neither MTA-STS nor TLS-RPT", () => {
    const got = lines(withZone("  - name: p.example\n    profile: parked\n"), "p.example");
    expect(got.filter((l) => /_mta-sts|_smtp\._tls|mta-sts/.test(l))).toEqual([]);
    expect(problems(withZone("  - name: p.example\n    profile: parked\n    overrides: { mtaSts: enforce }\n"))).toEqual([
      "zones.yaml:14:26: zones[3].overrides.mtaSts: profile 'parked' receives no mail (null MX): MTA-STS does not apply",
    ]);
  });

  it("refuses a mode RFC 8461 does not define and a max_age above one year", () => {
    expect(problems(withZone(`${zone}    overrides: { mtaSts: report }\n`)).join("\n")).toMatch(/zones\[3\]\.overrides\.mtaSts/);
    expect(problems(withZone(zone), `${FLEET}mail:\n  mtaSts: { maxAge: 31557601 }\n`).join("\n")).toMatch(/mail\.mtaSts\.maxAge/);
  });

  it("refuses records of the zone's own at mta-sts (the router's custom domain creates its record)", () => {
    const z = withZone(`${zone}    records:\n      - { type: CNAME, name: mta-sts, content: policies.vendor.example }\n`);
    expect(problems(z)).toContain("zones.yaml:16:9: zones[3].records[0]: mta-sts.m.example is the MTA-STS policy host: the router Worker serves it as a custom domain, which creates its own DNS record");
  });

  it("refuses a Microsoft 365 value that is not a host name, at the var it came from", () => {
    const z = withZone(`  - name: m.example\n    profile: mail-m365\n    vars: { m365Mx: "m-ex01.mail.protection.outlook.com.", m365Dkim1: s1.m.onmicrosoft.com, m365Dkim2: "selector2 pasted with spaces" }\n`);
    const got = problems(z);
    expect(got).toHaveLength(2);
    expect(got[0]).toMatch(/^zones\.yaml:14:\d+: zones\[3\]\.vars\.m365Mx: Microsoft 365 MX host .* without a trailing dot/);
    expect(got[1]).toMatch(/^zones\.yaml:14:\d+: zones\[3\]\.vars\.m365Dkim2: Microsoft 365 DKIM selector2 target/);
  });
});

describe("TLS-RPT (RFC 8460)", () => {
  it("publishes _smtp._tls reporting to the fleet's TLS-RPT mailbox, else its DMARC mailbox", () => {
    const z = withZone(`  - name: m.example\n    profile: mail-m365\n    vars: ${M365_VARS}\n`);
    expect(lines(z, "m.example")).toContain("TXT _smtp._tls v=TLSRPTv1; rua=mailto:dmarc@ops.example");
    const fleet = `${FLEET}mail:\n  tlsrpt: { rua: ["mailto:tls@ops.example", "https://reports.ops.example/tlsrpt"] }\n`;
    expect(lines(z, "m.example", fleet)).toContain("TXT _smtp._tls v=TLSRPTv1; rua=mailto:tls@ops.example,https://reports.ops.example/tlsrpt");
  });

  it("refuses a report address that is neither mailto: nor https:", () => {
    const got = problems(withZone(""), `${FLEET}mail:\n  tlsrpt: { rua: ["http://reports.ops.example"] }\n`);
    expect(got.join("\n")).toMatch(/fleet\.yaml:6:.*mail\.tlsrpt\.rua\[0\].*not a mailto: URI/);
  });
});

describe("CAA and a CNAME to an outside service (issue 15.5)", () => {
  const state = (zones: string) => {
    const inv = inventory({ zones });
    return { inv, findings: findings(inv, deriveDesiredState(inv, { accountId: "acct", workers: false })) };
  };
  it("reports, for a web: none zone, the names a CA cannot issue for, and names the fix", () => {
    const { findings: f } = state(withZone("  - name: p.example\n    profile: parked\n    records:\n      - { type: CNAME, name: status, content: statuspage.vendor.example }\n      - { type: CNAME, name: _acme-challenge.status, content: status.acme.vendor.example }\n      - { type: CNAME, name: alias, content: www.p.example }\n"));
    const caa = f.filter((x) => x.code === "caa-blocks-cname-target");
    expect(caa).toHaveLength(1);
    expect(caa[0]).toMatchObject({ level: "warning", zones: ["p.example"] });
    expect(caa[0]!.message).toBe(
      "p.example: CAA 'issue \";\"' at the apex lets no CA issue for status.p.example -> statuspage.vendor.example: a CA follows the CNAME and, finding no CAA at the target, climbs to the apex (RFC 8659 3). If the service needs a certificate for the name, add its CA to overrides.caa.issue of p.example (e.g. issue: [letsencrypt.org]).",
    );
  });
  it("says nothing once the zone allows a CA, or when the zone is proxied", () => {
    const rec = "    records:\n      - { type: CNAME, name: status, content: statuspage.vendor.example }\n";
    expect(state(withZone(`  - name: p.example\n    profile: parked\n    overrides: { caa: { issue: [letsencrypt.org] } }\n${rec}`)).findings.filter((x) => x.code === "caa-blocks-cname-target")).toEqual([]);
    expect(state(withZone(`  - name: p.example\n    profile: web\n${rec}`)).findings.filter((x) => x.code === "caa-blocks-cname-target")).toEqual([]);
  });
  it("and the fix works: with the service's CA under overrides.caa the apex CAA allows it", () => {
    const got = lines(withZone("  - name: p.example\n    profile: parked\n    overrides: { caa: { issue: [letsencrypt.org] } }\n"), "p.example");
    expect(got).toContain('CAA @ 0 issue "letsencrypt.org"');
    expect(got).not.toContain('CAA @ 0 issue ";"');
  });
});

describe("the policy files in the content map (sites build hook)", () => {
  it("adds one text/plain policy per zone that receives mail, and refuses a hand-made directory for a policy host", async () => {
    const { buildSites, SitesBuildError } = await import("../../scripts/lib/sites/build.ts");
    const { routerHosts } = await import("./router-shards.ts");
    const { loadInventoryOrThrow } = await import("./load.ts");
    const { cpSync, mkdirSync, mkdtempSync, writeFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const inv = loadInventoryOrThrow("fleet");
    const b = buildSites("fleet/sites", { allowedHosts: routerHosts(inv), inventory: inv });
    const ops = b.manifest.hosts.find((h) => h.host === "mta-sts.ops-mail.example")!;
    expect(ops.files).toEqual([{ path: "/.well-known/mta-sts.txt", hash: expect.stringMatching(/^[0-9a-f]{64}$/), type: "text/plain; charset=utf-8", size: expect.any(Number) }]);
    const body = new TextDecoder().decode(b.entries.find((e) => e.key === `sha256:${ops.files[0]!.hash}`)!.value);
    expect(body).toBe(mtaStsSiteFiles(inv).find((f) => f.host === "mta-sts.ops-mail.example")!.body);
    expect(b.manifest.hosts.filter((h) => h.host.startsWith("mta-sts.")).length).toBe(mtaStsSiteFiles(inv).length);
    // Without the inventory the build is the sites alone (the hook is opt-in).
    expect(buildSites("fleet/sites", { allowedHosts: routerHosts(inv) }).manifest.hosts.some((h) => h.host.startsWith("mta-sts."))).toBe(false);
    const copy = mkdtempSync(join(tmpdir(), "edgefleet-sites-"));
    cpSync("fleet/sites", copy, { recursive: true });
    mkdirSync(join(copy, "mta-sts.ops-mail.example", ".well-known"), { recursive: true });
    writeFileSync(join(copy, "mta-sts.ops-mail.example", ".well-known", "mta-sts.txt"), "version: STSv1\nmode: none\n");
    expect(() => buildSites(copy, { allowedHosts: routerHosts(inv), inventory: inv, base: copy })).toThrow(SitesBuildError);
  });
});
