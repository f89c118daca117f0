// Small inline inventories for tests, so a test can state the exact line it expects
// an error on. parseTexts runs the real loader on them.
import { parseInventory, type LoadResult } from "../../stacks/model/load.ts";
import type { Inventory } from "../../stacks/model/schema.ts";

export const FLEET = `dmarc:
  rua: mailto:dmarc@ops.example
caa:
  iodef: mailto:security@ops.example
`;

export const PROFILES = `providers:
  google-workspace:
    name: Google Workspace
    mx:
      - { priority: 1, host: smtp.google.com }
    spf: ["include:_spf.google.com"]
    dkim:
      - { selector: google, type: TXT, value: "\${vars.googleDkim}" }
  microsoft-365:
    name: Microsoft 365
    mx:
      - { priority: 0, host: "\${vars.m365Mx}" }
    spf: ["include:spf.protection.outlook.com"]
    dkim:
      - { selector: selector1, type: CNAME, value: "\${vars.m365Dkim1}" }
      - { selector: selector2, type: CNAME, value: "\${vars.m365Dkim2}" }
  fastmail:
    name: Fastmail
    mx:
      - { priority: 10, host: in1-smtp.messagingengine.com }
      - { priority: 20, host: in2-smtp.messagingengine.com }
    spf: ["include:spf.messagingengine.com"]
    dkim:
      - { selector: fm1, type: CNAME, value: "fm1.\${zone}.dkim.fmhosted.com" }
profiles:
  parked: { description: Parked, mail: none, web: none }
  web: { description: Web, mail: none, web: proxied }
  mail-google: { description: Google, mail: google-workspace, web: proxied }
  mail-m365: { description: M365, mail: microsoft-365, web: none }
  mail-fastmail: { description: Fastmail, mail: fastmail, web: none }
`;

export const ZONES = `zones:
  - name: ops.example
    id: a0000000000000000000000000000001
    profile: mail-fastmail
  - name: parked-one.example
    id: a0000000000000000000000000000002
    profile: parked
  - name: site.example
    id: a0000000000000000000000000000003
    profile: web
    tags: [shop]
`;

/** metering.yaml: one model, the ledger's and the archive's retention (what a Worker that
 * prices calls or binds the archive bucket needs from the inventory). */
export const METERING = `prices:
  currency: USD
  as_of: "2026-11-27"
  source: test
  models:
    claude-sonnet-4-5: { input: "3", cache_write_5m: "3.75", cache_write_1h: "6", cache_read: "0.30", output: "15" }
ledger:
  call_retention_days: 30
archive:
  retention_days: 7
`;

export interface Texts {
  fleet?: string;
  profiles?: string;
  zones?: string;
  /** metering.yaml; null: the inventory has none. */
  metering?: string | null;
}

export function parseTexts(texts: Texts = {}): LoadResult {
  const metering = texts.metering === undefined ? METERING : texts.metering;
  return parseInventory("fixture", {
    fleet: { path: "fleet.yaml", text: texts.fleet ?? FLEET },
    profiles: { path: "profiles.yaml", text: texts.profiles ?? PROFILES },
    zones: { path: "zones.yaml", text: texts.zones ?? ZONES },
    ...(metering !== null ? { metering: { path: "metering.yaml", text: metering } } : {}),
  });
}

export function inventory(texts: Texts = {}): Inventory {
  const r = parseTexts(texts);
  if (!r.ok) throw new Error(`fixture is invalid:\n${r.problems.map((p) => `${p.file}:${p.line}:${p.column} ${p.path} ${p.message}`).join("\n")}`);
  return r.inventory;
}

/** zones.yaml with one more zone (given as YAML lines indented for the list) after the base zones. */
export function withZone(zoneYaml: string): string {
  return ZONES + zoneYaml.replace(/^\n/, "");
}
