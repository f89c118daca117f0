// The plan's BIND zone files: parsed back by an independent parser (dnsz) to the
// same records, and loaded and served by a real DNS server (knot) that answers
// with the desired posture.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseZone } from "dnsz";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KNOTD, startKnot, type Knot } from "../../test/support/knot.ts";
import { txtRdata, zoneFiles } from "./bind.ts";
import { deriveDesiredState } from "./desired.ts";
import { loadInventoryOrThrow } from "./load.ts";
import { fqdn } from "./dns.ts";
import { rdata, type DnsRec } from "./posture.ts";

const inventory = loadInventoryOrThrow("fleet");
const state = deriveDesiredState(inventory, { accountId: "a".repeat(32) });
const files = zoneFiles(state, inventory.fleet.defaults.ttl);
const recordsOf = (zone: string): DnsRec[] => state.resources.filter((r) => r.zone === zone && r.record).map((r) => r.record!);

/** Decodes the <character-string>s of a TXT RDATA as a zone file writes them. */
function decodeTxt(s: string): string {
  const bytes: number[] = [];
  for (const m of s.matchAll(/"((?:[^"\\]|\\.)*)"/g)) {
    const body = m[1]!;
    for (let i = 0; i < body.length; i++) {
      if (body[i] === "\\") {
        const dec = /^\d{3}/.exec(body.slice(i + 1));
        if (dec) {
          bytes.push(Number(dec[0]));
          i += 3;
        } else bytes.push(body.charCodeAt(++i));
      } else bytes.push(body.charCodeAt(i));
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

describe("TXT character-strings", () => {
  it("quotes and escapes quotes and backslashes", () => {
    expect(txtRdata('say "hi" \\ bye')).toBe('"say \\"hi\\" \\\\ bye"');
  });
  it("splits values longer than 255 octets", () => {
    const long = "k".repeat(600);
    const pieces = txtRdata(long).split(" ");
    expect(pieces.map((p) => p.length - 2)).toEqual([255, 255, 90]);
    expect(decodeTxt(txtRdata(long))).toBe(long);
  });
  it("escapes non-ASCII octets as \\DDD", () => {
    expect(txtRdata("v=spf1 \u2013all")).toBe('"v=spf1 \\226\\128\\147all"');
    expect(decodeTxt(txtRdata("v=spf1 \u2013all"))).toBe("v=spf1 \u2013all");
  });
  it("writes an empty value as one empty string", () => {
    expect(txtRdata("")).toBe('""');
  });
});

describe("zone files", () => {
  it("writes one file per zone", () => {
    expect(files.size).toBe(state.zones.length);
    expect([...files.keys()]).toContain("ops-mail.example.zone");
  });

  it("is deterministic", () => {
    expect(zoneFiles(state, inventory.fleet.defaults.ttl)).toEqual(files);
  });

  it("parses back (dnsz) to exactly the desired records of every zone", () => {
    for (const zone of state.zones) {
      const parsed = parseZone(files.get(`${zone.name}.zone`)!).records.filter((r) => r.type !== "SOA" && r.type !== "NS");
      // dnsz takes a ';' inside quotes for a comment's start (CAA 'issue ";"'): rejoin those.
      const content = (r: { content: string; comment: string | null }) =>
        (r.content.split('"').length % 2 === 0 && r.comment !== null ? `${r.content};${r.comment}` : r.content).trim();
      const got = parsed.map((r) => `${r.name} ${r.type} ${r.type === "TXT" ? decodeTxt(content(r)) : content(r)}`).sort();
      const want = recordsOf(zone.name)
        .map((r) => `${fqdn(r.name, r.zone)} ${r.type} ${r.type === "TXT" ? r.content : rdata(r).replace(/\.$/, "")}`)
        .sort();
      expect(got.map((g) => g.replace(/\.$/, "")), zone.name).toEqual(want);
    }
  });
});

describe.skipIf(!KNOTD && !process.env.CI)("zone files served by knot", () => {
  let knot: Knot;
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "edgefleet-zones-"));
    for (const [name, text] of files) writeFileSync(join(dir, name), text);
    knot = await startKnot(dir, state.zones.map((z) => z.name));
  });
  afterAll(async () => knot?.stop());

  it("loads every zone with semantic checks on", () => {
    expect(knot.log()).not.toMatch(/semantic check|failed to load/i);
  });

  it("answers each no-mail zone with the hardened posture", async () => {
    const parked = state.zones.filter((z) => z.profile === "parked").slice(0, 40);
    expect(parked.length).toBeGreaterThan(10);
    for (const z of parked) {
      // Node's resolver returns a null MX as an empty exchange (FINDINGS.md).
      const mx = (await knot.resolver.resolveMx(z.name)).map(({ exchange, priority }) => ({ exchange, priority }));
      expect(mx).toEqual([{ exchange: "", priority: 0 }]);
      const txt = (await knot.resolver.resolveTxt(z.name)).map((chunks) => chunks.join(""));
      expect(txt).toEqual(["v=spf1 -all"]);
      const dmarc = (await knot.resolver.resolveTxt(`_dmarc.${z.name}`)).map((c) => c.join(""));
      expect(dmarc).toEqual(["v=DMARC1; p=reject; sp=reject; adkim=s; aspf=s; rua=mailto:dmarc-reports@ops-mail.example"]);
      // The empty DKIM wildcard answers any selector.
      expect((await knot.resolver.resolveTxt(`s1._domainkey.${z.name}`)).map((c) => c.join(""))).toEqual(["v=DKIM1; p="]);
      const caa = await knot.resolver.resolveCaa(z.name);
      expect(caa.filter((c) => c.issue !== undefined).map((c) => c.issue)).toEqual([";"]);
    }
  });

  it("answers the report authorisations in the mailbox's zone", async () => {
    const txt = await knot.resolver.resolveTxt("northwind-traders.example._report._dmarc.ops-mail.example");
    expect(txt.map((c) => c.join(""))).toEqual(["v=DMARC1"]);
  });

  it("answers a long DKIM key split into strings, joined back whole", async () => {
    const want = inventory.zones.find((z) => z.name === "northwind-traders.example")!.vars.googleDkim!;
    const got = await knot.resolver.resolveTxt("google._domainkey.northwind-traders.example");
    expect(got).toHaveLength(1);
    expect(got[0]!.length).toBeGreaterThan(1);
    expect(got[0]!.join("")).toBe(want);
  });

  it("lets Cloudflare's CAs issue on proxied zones", async () => {
    const caa = await knot.resolver.resolveCaa("llm-gateway.example");
    const issuers = caa.filter((c) => c.issue !== undefined).map((c) => c.issue).sort();
    expect(issuers).toEqual(["digicert.com", "letsencrypt.org", "pki.goog", "sectigo.com", "ssl.com"]);
  });
});
