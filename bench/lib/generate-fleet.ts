// Generates an inventory of N zones shaped like the example fleet (the same
// profiles; ~60% parked, ~35% web, ~5% mail; some extra records, tags and ignore
// rules), deterministically, for benchmarks.
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";

export function generateFleet(dir: string, zones: number, exampleDir = "fleet"): string {
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(exampleDir, "fleet.yaml"), join(dir, "fleet.yaml"));
  copyFileSync(join(exampleDir, "profiles.yaml"), join(dir, "profiles.yaml"));
  copyFileSync(join(exampleDir, "metering.yaml"), join(dir, "metering.yaml"));
  // The zones fleet.yaml's workers: serve (the LLM proxies' hostnames), as in the example.
  const lines = [
    "zones:",
    "  - name: ops-mail.example",
    "    profile: mail-fastmail",
    "    tags: [ops]",
    "  - name: llm-gateway.example",
    "    profile: web",
    "    records:",
    '      - { type: AAAA, name: api, content: "100::", proxied: true }',
    "  - name: llm-gateway-eu.example",
    "    profile: web",
    "    records:",
    '      - { type: AAAA, name: api, content: "100::", proxied: true }',
  ];
  for (let i = 3; i < zones; i++) {
    const h = createHash("sha256").update(`zone-${i}`).digest();
    const name = `brand-${i.toString(36)}-${h.readUInt16BE(0).toString(36)}.example`;
    const r = h[2]! / 256;
    const profile = r < 0.6 ? "parked" : r < 0.95 ? "web" : "mail-fastmail";
    lines.push(`  - name: ${name}`);
    if (h[3]! > 8) lines.push(`    id: ${h.subarray(4, 20).toString("hex")}`);
    lines.push(`    profile: ${profile}`);
    if (h[20]! < 128) lines.push(`    tags: [${h[20]! < 64 ? "legacy" : "campaign"}]`);
    if (profile === "web" && h[21]! < 40) {
      lines.push("    records:", `      - { type: TXT, name: "@", content: "site-verification=${h.subarray(22, 30).toString("hex")}" }`);
    }
    if (h[30]! < 12) lines.push("    ignore:", "      - { type: TXT, name: _acme-challenge }");
  }
  writeFileSync(join(dir, "zones.yaml"), `${lines.join("\n")}\n`);
  return dir;
}
