// ZonePosture: one zone's DNS posture as Pulumi resources. It maps the zone's part
// of the desired state (an optional cloudflare.Zone and its cloudflare.DnsRecords)
// onto @pulumi/cloudflare one to one; every decision was made in stacks/model.
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import { isRef, mapRefs, type DesiredResource, type InputValue } from "../model/desired.ts";
import { TYPES } from "../model/names.ts";
import type { ProviderArgs } from "../model/provider-args.ts";

export const ZONE_POSTURE_TYPE = TYPES.zonePosture;

export interface ZonePostureArgs {
  /** The zone's resources from the desired state (everything whose parent is this component). */
  resources: DesiredResource[];
}

export class ZonePosture extends pulumi.ComponentResource {
  /** The Cloudflare id of the zone: given in the inventory, or that of the zone created here. */
  public readonly zoneId: pulumi.Output<string>;

  constructor(name: string, args: ZonePostureArgs, opts?: pulumi.ComponentResourceOptions) {
    super(ZONE_POSTURE_TYPE, name, {}, opts);
    const ids = new Map<string, pulumi.Output<string>>();
    const resolve = (v: InputValue) =>
      mapRefs(v, (ref) => {
        const id = isRef(ref) ? ids.get(ref.$ref) : undefined;
        if (!id) throw new Error(`internal: ${name} refers to ${isRef(ref) ? ref.$ref : JSON.stringify(ref)}, which it did not create`);
        return id;
      });
    // The model wrote these inputs as ModelInputs of the resource's type, checked against
    // the provider's Args (stacks/model/provider-args.ts); resolving swaps the zone
    // reference for the zone's id Output, which leaves exactly ProviderArgs[type].
    const inputs = <K extends typeof TYPES.zone | typeof TYPES.dnsRecord>(_type: K, r: DesiredResource) => resolve(r.inputs) as ProviderArgs[K];

    let zoneId: pulumi.Output<string> | undefined;
    // The zone first, so records can refer to its id.
    for (const r of args.resources.filter((x) => x.type === TYPES.zone)) {
      const zone = new cloudflare.Zone(r.name, inputs(TYPES.zone, r), {
        parent: this,
        retainOnDelete: r.options?.retainOnDelete,
      });
      ids.set(r.name, zone.id);
      zoneId = zone.id;
    }
    for (const r of args.resources.filter((x) => x.type === TYPES.dnsRecord)) {
      const rec = new cloudflare.DnsRecord(r.name, inputs(TYPES.dnsRecord, r), { parent: this });
      zoneId ??= rec.zoneId;
    }
    this.zoneId = zoneId ?? pulumi.output("");
    this.registerOutputs({ zoneId: this.zoneId });
  }
}
