// The verifier's DNS under test: the example fleet's zone files (from the plan's BIND
// export) with chosen drifts written into them, plus stand-in zones for the mail
// providers' SPF includes, served by the REAL knot (Debian's knotd, test/support/knot.ts)
// on 127.0.0.1: not a fake of DNS, a real authoritative server fed test data; and the
// MTA-STS policies served by the real router Worker.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { zoneFiles } from "../../stacks/model/bind.ts";
import { deriveDesiredState, type DesiredState } from "../../stacks/model/desired.ts";
import type { Inventory } from "../../stacks/model/schema.ts";
import { startKnot, type Knot } from "../support/knot.ts";
import type { Miniflare } from "miniflare";
import { routerHosts } from "../../stacks/model/router-shards.ts";
import { hostKey, type HostTable } from "../../workers/router/src/table.ts";
import { loadEntries, routerKvBinding, startRouter } from "../../workers/router/local/miniflare.ts";
import { buildSites, type KvEntry } from "../../scripts/lib/sites/build.ts";

/**
 * The providers' SPF include targets, served as small stand-in zones: a real
 * receiver resolves them on the internet; here they answer with documentation
 * networks so the evaluation runs every lookup without leaving loopback.
 */
export const PROVIDER_ZONES: Record<string, string[]> = {
  "messagingengine.com": ["spf 3600 IN TXT \"v=spf1 ip4:198.51.100.0/24 -all\""],
  "google.com": ["_spf 3600 IN TXT \"v=spf1 ip4:203.0.113.0/24 ~all\""],
  "outlook.com": ["spf.protection 3600 IN TXT \"v=spf1 ip4:198.51.100.128/25 -all\""],
  "sendgrid.net": ["@ 3600 IN TXT \"v=spf1 ip4:203.0.113.128/25 ~all\""],
};

function stubZone(zone: string, lines: string[]): string {
  return [`$ORIGIN ${zone}.`, "$TTL 3600", `@ 3600 IN SOA ns1.edgefleet.invalid. hostmaster.${zone}. 1 7200 3600 1209600 3600`, "@ 3600 IN NS ns1.edgefleet.invalid.", ...lines, ""].join("\n");
}

/** Edits of one zone file's text, applied before knot starts. */
export type Drifts = Record<string, (text: string) => string>;

export async function serveFleet(inventory: Inventory, drifts: Drifts = {}): Promise<{ knot: Knot; state: DesiredState; dir: string }> {
  const state = deriveDesiredState(inventory, { accountId: "a".repeat(32), workers: false });
  const dir = mkdtempSync(join(tmpdir(), "edgefleet-verify-"));
  for (const [name, text] of zoneFiles(state, inventory.fleet.defaults.ttl)) {
    const zone = name.replace(/\.zone$/, "");
    const edit = drifts[zone];
    const edited = edit ? edit(text) : text;
    if (edit && edited === text) throw new Error(`test drift for ${zone} changed nothing`);
    writeFileSync(join(dir, name), edited);
  }
  return { knot: await serveZoneDir(dir, state.zones.map((z) => z.name)), state, dir };
}

/**
 * Serves a directory of zone files (`<zone>.zone`, e.g. written by `npm run plan --
 * --zone-files DIR`) with knot on 127.0.0.1, adding the providers' stand-in zones.
 */
export async function serveZoneDir(dir: string, zones: string[]): Promise<Knot> {
  for (const [zone, lines] of Object.entries(PROVIDER_ZONES)) writeFileSync(join(dir, `${zone}.zone`), stubZone(zone, lines));
  const all = [...zones, ...Object.keys(PROVIDER_ZONES)];
  // startKnot tries another port when knotd finds its TCP twin taken.
  return startKnot(dir, all);
}

/** Edits of the router's content map after the sites build is loaded, by policy host. */
export type PolicyDrifts = Record<string, (table: HostTable) => HostTable | Promise<HostTable>>;

/**
 * The fleet's MTA-STS policies served by the real router Worker in workerd (Miniflare)
 * on 127.0.0.1, from the content map the sites build makes of the inventory; verify
 * fetches them with `--mta-sts-origin` (Host: mta-sts.<zone>). `drifts` rewrite a policy
 * host's table in KV, as a bad publish or a hand edit would.
 */
export async function servePolicies(inventory: Inventory, drifts: PolicyDrifts = {}, extra: KvEntry[] = []): Promise<{ origin: string; mf: Miniflare }> {
  const build = buildSites(join(inventory.dir, "sites"), { allowedHosts: routerHosts(inventory), inventory });
  const mf = await startRouter({ port: 0 });
  await loadEntries(mf, [...build.entries, ...extra]);
  const kv = await mf.getKVNamespace(routerKvBinding());
  for (const [host, edit] of Object.entries(drifts)) {
    const table = (await kv.get(hostKey(host), "json")) as HostTable | null;
    if (!table) throw new Error(`test drift: no table for ${host}`);
    await kv.put(hostKey(host), JSON.stringify(await edit(table)));
  }
  return { origin: new URL(String(await mf.ready)).origin, mf };
}
