// The desired state: a pure function from the inventory to the list of Pulumi
// resources {type, name, inputs} that `pulumi up` would register. The Pulumi
// program, the offline plan and the policies all read this one list.
import { fqdn } from "./dns.ts";
import { recordResourceName, TYPES, zonePostureName, zoneResourceName } from "./names.ts";
import { fleetRecords, MANAGED_COMMENT, type DnsRec } from "./posture.ts";
import { modelInputs } from "./provider-args.ts";
import type { IgnoreRule, Inventory } from "./schema.ts";
import { deriveWorkers, isBundleRef, isSecretRef, type BundleRef, type DesiredWorker, type SecretRef } from "./workers.ts";

/** A reference to an output of another desired resource, resolved by the Pulumi program. */
export interface Ref {
  $ref: string;
  /** The output: "id" for most resources; D1 databases are bound by "uuid", queues by "queueId". */
  $output: "id" | "uuid" | "queueId";
}

/** Besides plain values and Refs, a Worker's inputs hold a SecretRef (Pulumi secret
 * config, resolved with requireSecret) and a BundleRef (the esbuild bundle). */
export type InputValue = string | number | boolean | Ref | SecretRef | BundleRef | InputValue[] | { [key: string]: InputValue };
export type Inputs = Record<string, InputValue>;

export interface DesiredResource {
  type: string;
  name: string;
  /** Logical name of the parent component, if any. */
  parent?: string;
  zone: string;
  inputs: Inputs;
  /** Resource options the program must set (mocks cannot observe these; the component test does). */
  options?: { retainOnDelete?: boolean; protect?: boolean; ignoreChanges?: string[]; dependsOn?: string[] };
  /** The record behind a DnsRecord resource, for the plan, zone files and verification. */
  record?: DnsRec;
}

export interface ZoneSummary {
  name: string;
  profile: string;
  tags: string[];
  /** Cloudflare zone id when the zone exists already; undefined when edgefleet creates it. */
  id?: string;
  ignore: IgnoreRule[];
}

export interface DesiredState {
  accountId: string;
  zones: ZoneSummary[];
  resources: DesiredResource[];
  /** The fleet's Workers (the router's shards and the inventory's workers:). */
  workers: DesiredWorker[];
}

export interface DeriveOptions {
  /** Cloudflare account that owns the zones edgefleet creates. */
  accountId: string;
  /** Where Workers' folders are (default: the repository's workers/). */
  workersDir?: string;
  /** false: the DNS posture only, without the Workers (no bundling), for tools that
   * check DNS (verify, import, zone files) and must not depend on Worker code compiling. */
  workers?: boolean;
}

export function isRef(v: unknown): v is Ref {
  return typeof v === "object" && v !== null && "$ref" in v;
}
export { isBundleRef, isSecretRef } from "./workers.ts";

/** A reference an input holds: to another resource's output, a secret, or a bundle. */
export type InputRef = Ref | SecretRef | BundleRef;

/** Rebuilds an input value with every reference replaced by what `leaf` makes of it:
 * the one walk the components, the policies and the tests resolve references with. */
export function mapRefs(v: InputValue, leaf: (ref: InputRef) => unknown): unknown {
  if (isRef(v) || isSecretRef(v) || isBundleRef(v)) return leaf(v);
  if (Array.isArray(v)) return v.map((x) => mapRefs(x, leaf));
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, mapRefs(x, leaf)]));
  return v;
}

/** The inputs of a cloudflare.DnsRecord for a record (checked against the provider's
 * DnsRecordArgs: stacks/model/provider-args.ts). */
export function recordInputs(r: DnsRec, zoneId: string | Ref): Inputs {
  const base = { zoneId, name: fqdn(r.name, r.zone), type: r.type, ttl: r.ttl, comment: r.comment ?? MANAGED_COMMENT };
  const proxied = r.type === "A" || r.type === "AAAA" || r.type === "CNAME" ? { proxied: r.proxied ?? false } : {};
  switch (r.type) {
    case "CAA":
      return modelInputs(TYPES.dnsRecord, { ...base, data: { flags: r.caa!.flags, tag: r.caa!.tag, value: r.caa!.value } });
    case "SRV":
      return modelInputs(TYPES.dnsRecord, { ...base, priority: r.srv!.priority, data: { priority: r.srv!.priority, weight: r.srv!.weight, port: r.srv!.port, target: r.srv!.target } });
    case "MX":
      return modelInputs(TYPES.dnsRecord, { ...base, content: r.content!, priority: r.priority! });
    default:
      return modelInputs(TYPES.dnsRecord, { ...base, content: r.content!, ...proxied });
  }
}

export function deriveDesiredState(inv: Inventory, opts: DeriveOptions): DesiredState {
  const records = fleetRecords(inv);
  const resources: DesiredResource[] = [];
  const zones: ZoneSummary[] = [];
  for (const zone of inv.zones) {
    zones.push({ name: zone.name, profile: zone.profile, tags: zone.tags, id: zone.id, ignore: zone.ignore });
    const parent = zonePostureName(zone.name);
    resources.push({ type: TYPES.zonePosture, name: parent, zone: zone.name, inputs: {} });
    let zoneId: string | Ref;
    if (zone.id) {
      zoneId = zone.id;
    } else {
      const name = zoneResourceName(zone.name);
      resources.push({
        type: TYPES.zone,
        name,
        parent,
        zone: zone.name,
        inputs: modelInputs(TYPES.zone, { account: { id: opts.accountId }, name: zone.name, type: "full" }),
        // Removing a zone from the inventory must never delete it from Cloudflare.
        options: { retainOnDelete: true },
      });
      zoneId = { $ref: name, $output: "id" };
    }
    const named = (records.get(zone.name) ?? []).map((r) => ({ r, name: recordResourceName(r) }));
    named.sort((a, b) => cmp(a.name, b.name));
    for (const { r, name } of named) {
      resources.push({ type: TYPES.dnsRecord, name, parent, zone: zone.name, inputs: recordInputs(r, zoneId), record: r });
    }
  }
  const zoneIds = new Map<string, string | Ref>(inv.zones.map((z) => [z.name, z.id ?? { $ref: zoneResourceName(z.name), $output: "id" }]));
  const fleetWorkers = opts.workers === false ? { workers: [], resources: [] } : deriveWorkers(inv, opts.accountId, (zone) => zoneIds.get(zone)!, { workersDir: opts.workersDir });
  resources.push(...fleetWorkers.resources);
  const seen = new Set<string>();
  for (const r of resources) {
    const key = `${r.type}::${r.name}`;
    if (seen.has(key)) throw new Error(`internal: two desired resources are named ${key}`);
    seen.add(key);
  }
  return { accountId: opts.accountId, zones, resources, workers: fleetWorkers.workers };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
