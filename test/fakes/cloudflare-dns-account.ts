// Fixture for the fake Cloudflare DNS API (cloudflare-dns-api.ts): the account as
// edgefleet would have left it (the desired state's records, in the API's shapes), plus
// what people and other tools added, and one hand-made zone that matches no profile.
// Record shapes: node_modules/cloudflare 7.3.0 resources/dns/records.d.ts (TXT content
// comes back quoted; CAA and SRV carry `data`). Checked 2026-11-27.
import { createHash } from "node:crypto";
import type { DesiredState } from "../../stacks/model/desired.ts";
import { fqdn } from "../../stacks/model/dns.ts";
import { rdata, type DnsRec } from "../../stacks/model/posture.ts";
import type { FakeRecord, FakeZone } from "./cloudflare-dns-api.ts";

export const ACCOUNT = "0123456789abcdef0123456789abcdef";
export const TOKEN = "cf-test-token-7f3a9c";
export const LEGACY = { name: "legacy-shop.example", id: "feed0000000000000000000000000001" };

const hex = (s: string) => createHash("sha256").update(s).digest("hex").slice(0, 32);

export function apiRecord(r: DnsRec, zoneId: string): FakeRecord {
  const base: FakeRecord = { id: hex(`${zoneId} ${r.type} ${r.name} ${rdata(r)}`), zone_id: zoneId, zone_name: r.zone, name: fqdn(r.name, r.zone), type: r.type, ttl: r.ttl, comment: r.comment ?? "managed by edgefleet" };
  if (r.type === "CAA") return { ...base, content: `${r.caa!.flags} ${r.caa!.tag} "${r.caa!.value}"`, data: { ...r.caa! } };
  if (r.type === "SRV") return { ...base, content: `${r.srv!.weight} ${r.srv!.port} ${r.srv!.target}`, priority: r.srv!.priority, data: { ...r.srv! } };
  // Cloudflare returns TXT content in quotes; the importer must read it back unquoted.
  if (r.type === "TXT") return { ...base, content: `"${r.content!.replaceAll('"', '\\"')}"` };
  return { ...base, content: r.content!, ...(r.type === "MX" ? { priority: r.priority } : {}), ...(["A", "AAAA", "CNAME"].includes(r.type) ? { proxied: r.proxied ?? false } : {}) };
}

export const extra = (zoneId: string, zone: string, type: string, name: string, content: string, more: Partial<FakeRecord> = {}): FakeRecord => ({
  id: hex(`${zoneId} ${type} ${name} ${content}`), zone_id: zoneId, zone_name: zone, name: name === "@" ? zone : `${name}.${zone}`, type, content, ttl: 3600, comment: null, ...more,
});

/** The account as edgefleet would have left it, plus what people and other tools added. */
export function seed(state: DesiredState): { zones: FakeZone[]; records: Map<string, FakeRecord[]> } {
  const zones: FakeZone[] = [];
  const records = new Map<string, FakeRecord[]>();
  for (const z of state.zones) {
    if (!z.id) continue; // wingtip-toys.example: not created yet
    zones.push({ id: z.id, name: z.name, account: { id: ACCOUNT, name: "edge" }, status: "active" });
    records.set(z.id, state.resources.filter((r) => r.zone === z.name && r.record).map((r) => apiRecord(r.record!, z.id!)));
  }
  const idOf = (name: string) => state.zones.find((z) => z.name === name)!.id!;
  const add = (zone: string, r: FakeRecord) => records.get(idOf(zone))!.push(r);
  add("ops-mail.example", extra(idOf("ops-mail.example"), "ops-mail.example", "TXT", "_acme-challenge", '"certbot-token-1"'));
  add("ops-mail.example", extra(idOf("ops-mail.example"), "ops-mail.example", "NS", "@", "ns1.cloudflare.example"));
  add("llm-gateway.example", extra(idOf("llm-gateway.example"), "llm-gateway.example", "CNAME", "legacy-api", "old-stack.hosting.example", { proxied: false }));
  add("llm-gateway.example", extra(idOf("llm-gateway.example"), "llm-gateway.example", "NS", "dev", "ns1.dev-dns.example"));
  add("llm-gateway.example", extra(idOf("llm-gateway.example"), "llm-gateway.example", "HTTPS", "svc", "1 . alpn=h2"));
  add("alpine-bikes.example", extra(idOf("alpine-bikes.example"), "alpine-bikes.example", "A", "legacy", "192.0.2.55", { proxied: false, ttl: 600 }));
  // The parked-subdomain posture at a name with an address (issue 15.5): adopted as the posture's, not as extras.
  add("alpine-bikes.example", extra(idOf("alpine-bikes.example"), "alpine-bikes.example", "MX", "legacy", ".", { priority: 0 }));
  add("alpine-bikes.example", extra(idOf("alpine-bikes.example"), "alpine-bikes.example", "TXT", "legacy", '"v=spf1 -all"'));
  // A zone someone set up by hand: real mail, soft SPF, no DMARC: it matches no profile.
  zones.push({ id: LEGACY.id, name: LEGACY.name, account: { id: ACCOUNT, name: "edge" }, status: "active" });
  records.set(LEGACY.id, [
    extra(LEGACY.id, LEGACY.name, "MX", "@", "mail.legacy-shop.example", { priority: 10 }),
    extra(LEGACY.id, LEGACY.name, "TXT", "@", '"v=spf1 mx ~all"'),
    extra(LEGACY.id, LEGACY.name, "A", "mail", "192.0.2.80", { proxied: false }),
  ]);
  return { zones, records };
}

