// The one place logical (Pulumi) names come from. A name says what a thing is
// (zone, record type, owner name, a short content key), never where it sits in a
// list, so re-ordering, adding or removing zones leaves every other name alone.
import type { DnsRec } from "./posture.ts";

export const TYPES = {
  zonePosture: "edgefleet:cloudflare:ZonePosture",
  zone: "cloudflare:index/zone:Zone",
  dnsRecord: "cloudflare:index/dnsRecord:DnsRecord",
  worker: "edgefleet:cloudflare:Worker",
  router: "edgefleet:cloudflare:Router",
  workersScript: "cloudflare:index/workersScript:WorkersScript",
  workersKvNamespace: "cloudflare:index/workersKvNamespace:WorkersKvNamespace",
  r2Bucket: "cloudflare:index/r2Bucket:R2Bucket",
  r2BucketLifecycle: "cloudflare:index/r2BucketLifecycle:R2BucketLifecycle",
  d1Database: "cloudflare:index/d1Database:D1Database",
  queue: "cloudflare:index/queue:Queue",
  queueConsumer: "cloudflare:index/queueConsumer:QueueConsumer",
  workersCronTrigger: "cloudflare:index/workersCronTrigger:WorkersCronTrigger",
  workersRoute: "cloudflare:index/workersRoute:WorkersRoute",
  workersCustomDomain: "cloudflare:index/workersCustomDomain:WorkersCustomDomain",
} as const;

function checked(name: string): string {
  // Pulumi URNs use '::' as their separator; a name must never contain it.
  if (name.includes("::")) throw new Error(`internal: logical name '${name}' contains '::'`);
  return name;
}

/** The ZonePosture component of a zone. */
export function zonePostureName(zone: string): string {
  return checked(zone);
}

/** The cloudflare.Zone of a zone edgefleet creates (one without an id in the inventory). */
export function zoneResourceName(zone: string): string {
  return checked(`${zone}/zone`);
}

/** A DNS record: zone/TYPE/owner[/key], e.g. shop.example/TXT/_dmarc/dmarc. */
export function recordResourceName(r: Pick<DnsRec, "zone" | "type" | "name" | "key">): string {
  return checked([r.zone, r.type, r.name, r.key].filter((part) => part !== undefined && part !== "").join("/"));
}
