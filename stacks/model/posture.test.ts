// The records each profile gives a zone, the overrides, and the DMARC report
// authorisations: the hardened posture is the product, so each record is checked.
import { describe, expect, it } from "vitest";
import { inventory, withZone } from "../../test/support/inventory.ts";
import { deriveDesiredState } from "./desired.ts";
import { CLOUDFLARE_CAS } from "./dns.ts";
import { fleetRecords, rdata } from "./posture.ts";

/** A zone's records as sorted "TYPE name value ttl" lines. */
function lines(zones: string, zone: string): string[] {
  const recs = fleetRecords(inventory({ zones })).get(zone) ?? [];
  return recs.map((r) => `${r.type} ${r.name} ${rdata(r)}${r.proxied ? " proxied" : ""} ${r.ttl}`).sort();
}

const DMARC = "v=DMARC1; p=reject; sp=reject; adkim=s; aspf=s; rua=mailto:dmarc@ops.example";
const IODEF = 'CAA @ 0 iodef "mailto:security@ops.example" 3600';

describe("posture profiles", () => {
  it("parked: null MX, SPF -all, DMARC reject, empty DKIM wildcard, CAA that lets no CA issue", () => {
    expect(lines(withZone("  - name: p.example\n    profile: parked\n"), "p.example")).toEqual(
      [
        IODEF,
        'CAA @ 0 issue ";" 3600',
        'CAA @ 0 issuewild ";" 3600',
        "MX @ 0 . 3600",
        "MX * 0 . 3600",
        "TXT *._domainkey v=DKIM1; p= 3600",
        "TXT * v=spf1 -all 3600",
        "TXT @ v=spf1 -all 3600",
        `TXT _dmarc ${DMARC} 3600`,
      ].sort(),
    );
  });

  it("web: the no-mail posture, CAA for Cloudflare's CAs, proxied apex and www", () => {
    const got = lines(withZone("  - name: w.example\n    profile: web\n"), "w.example");
    expect(got).toEqual(
      [
        IODEF,
        ...CLOUDFLARE_CAS.flatMap((ca) => [`CAA @ 0 issue "${ca}" 3600`, `CAA @ 0 issuewild "${ca}" 3600`]),
        "AAAA @ 100:: proxied 1",
        "AAAA www 100:: proxied 1",
        "MX @ 0 . 3600",
        "MX * 0 . 3600",
        "MX www 0 . 3600",
        "TXT *._domainkey v=DKIM1; p= 3600",
        "TXT * v=spf1 -all 3600",
        "TXT www v=spf1 -all 3600",
        "TXT @ v=spf1 -all 3600",
        `TXT _dmarc ${DMARC} 3600`,
      ].sort(),
    );
    expect(got.join("\n")).not.toContain('issue ";"');
  });

  it("Google Workspace: its MX, SPF include and per-zone DKIM key; DMARC reject; no empty DKIM wildcard", () => {
    const got = lines(withZone('  - name: g.example\n    profile: mail-google\n    vars: { googleDkim: "v=DKIM1; k=rsa; p=KEY" }\n'), "g.example");
    expect(got).toContain("MX @ 1 smtp.google.com. 3600");
    expect(got).toContain("TXT @ v=spf1 include:_spf.google.com -all 3600");
    expect(got).toContain("TXT google._domainkey v=DKIM1; k=rsa; p=KEY 3600");
    expect(got).toContain(`TXT _dmarc ${DMARC} 3600`);
    expect(got.filter((l) => l.startsWith("MX "))).toHaveLength(1);
    expect(got.some((l) => l.includes("*._domainkey"))).toBe(false);
  });

  it("Microsoft 365: the MX host and both DKIM targets Microsoft assigned, from the zone's vars, never from its name", () => {
    // A hyphenated name: Microsoft does not simply dash the dots (issue 15.6), so nothing is derived.
    const vars = "{ m365Mx: contosolegal-ex01c.mail.protection.outlook.com, m365Dkim1: selector1-x._domainkey.contoso.r-v1.dkim.mail.microsoft, m365Dkim2: selector2-x._domainkey.contoso.r-v1.dkim.mail.microsoft }";
    const got = lines(withZone(`  - name: contoso-legal.example\n    profile: mail-m365\n    vars: ${vars}\n`), "contoso-legal.example");
    expect(got).toContain("MX @ 0 contosolegal-ex01c.mail.protection.outlook.com. 3600");
    expect(got).toContain("TXT @ v=spf1 include:spf.protection.outlook.com -all 3600");
    expect(got).toContain("CNAME selector1._domainkey selector1-x._domainkey.contoso.r-v1.dkim.mail.microsoft. 3600");
    expect(got).toContain("CNAME selector2._domainkey selector2-x._domainkey.contoso.r-v1.dkim.mail.microsoft. 3600");
    expect(got.join("\n")).not.toContain("contoso-legal-example");
    // No web: CAA allows no CA.
    expect(got).toContain('CAA @ 0 issue ";" 3600');
  });

  it("Fastmail: two MX hosts by priority", () => {
    const got = lines(withZone("  - name: f.example\n    profile: mail-fastmail\n"), "f.example");
    expect(got.filter((l) => l.startsWith("MX "))).toEqual(["MX @ 10 in1-smtp.messagingengine.com. 3600", "MX @ 20 in2-smtp.messagingengine.com. 3600"]);
    expect(got).toContain("CNAME fm1._domainkey fm1.f.example.dkim.fmhosted.com. 3600");
  });
});

describe("per-zone overrides and extra records", () => {
  it("ttl, web, extra CAs, SPF includes and extra report mailboxes", () => {
    const got = lines(
      withZone(
        [
          "  - name: o.example",
          "    profile: mail-fastmail",
          "    overrides:",
          "      ttl: 600",
          "      web: proxied",
          "      caa: { issue: [digicert.com] }",
          '      spf: { include: ["include:sendgrid.net"] }',
          "      dmarc: { rua: [mailto:agg@o.example] }",
          "",
        ].join("\n"),
      ),
      "o.example",
    );
    expect(got).toContain("TXT @ v=spf1 include:spf.messagingengine.com include:sendgrid.net -all 600");
    expect(got).toContain("TXT _dmarc v=DMARC1; p=reject; sp=reject; adkim=s; aspf=s; rua=mailto:dmarc@ops.example,mailto:agg@o.example 600");
    expect(got).toContain('CAA @ 0 issue "digicert.com" 600');
    expect(got).toContain('CAA @ 0 issue "letsencrypt.org" 600');
    expect(got).toContain("AAAA @ 100:: proxied 1");
  });

  it("extra records keep their own TTL and proxying; proxied ones are automatic", () => {
    const got = lines(
      withZone(
        "  - name: e.example\n    profile: parked\n    records:\n      - { type: A, name: shop, content: 192.0.2.7, proxied: true, ttl: 120 }\n      - { type: TXT, name: \"@\", content: \"verify=1\", ttl: 300 }\n",
      ),
      "e.example",
    );
    expect(got).toContain("A shop 192.0.2.7 proxied 1");
    expect(got).toContain("TXT @ verify=1 300");
  });
});

describe("DMARC report authorisation", () => {
  it("is generated in the mailbox's zone for every other zone, and not for the mailbox zone itself", () => {
    const inv = inventory();
    const ops = fleetRecords(inv).get("ops.example")!;
    const auth = ops.filter((r) => r.source === "report-auth").map((r) => `${r.name} ${r.content}`).sort();
    expect(auth).toEqual(["parked-one.example._report._dmarc v=DMARC1", "site.example._report._dmarc v=DMARC1"]);
  });

  it("covers a zone's extra mailbox in another fleet zone, under a subdomain", () => {
    const inv = inventory({
      zones: withZone("  - name: x.example\n    profile: parked\n    overrides:\n      dmarc: { rua: [mailto:agg@reports.site.example] }\n"),
    });
    const site = fleetRecords(inv).get("site.example")!;
    expect(site.filter((r) => r.source === "report-auth").map((r) => r.name)).toEqual(["x.example._report._dmarc.reports"]);
  });

  it("names each authorisation after the reporting zone, so removing one zone removes only its record", () => {
    const before = deriveDesiredState(inventory({ zones: withZone("  - name: x.example\n    profile: parked\n") }), { accountId: "a" });
    const after = deriveDesiredState(inventory(), { accountId: "a" });
    const gone = before.resources.map((r) => r.name).filter((n) => !after.resources.some((a) => a.name === n));
    expect(gone.filter((n) => n.startsWith("ops.example/"))).toEqual(["ops.example/TXT/x.example._report._dmarc/report"]);
  });
});
