// Cloudflare allows routes on at most 1,000 zones per Worker script; beyond that the
// router shards zones across several scripts. A route's zoneId is unknown in the preview
// that creates its zone: then the zone is its parent's name.
import type { StackValidationPolicy } from "@pulumi/policy";
import { groupBy, known, TYPE } from "../lib/resources.ts";

export const MAX_ZONES_PER_WORKER = 1000;

export const maxZonesPerWorker: StackValidationPolicy = {
  name: "max-zones-per-worker",
  description: `No Worker has routes or custom domains on more than ${MAX_ZONES_PER_WORKER} zones (a Cloudflare limit).`,
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    const attached = args.resources
      .filter((r) => r.type === TYPE.workersRoute || r.type === TYPE.workersCustomDomain)
      .map((r) => ({ script: String(r.props.script ?? r.props.service ?? "(unknown)"), zone: String(known(r.props, "zoneId") ?? r.parent?.name ?? r.name), urn: r.urn }));
    for (const [script, rows] of groupBy(attached, (a) => a.script)) {
      const zones = new Set(rows.map((r) => r.zone));
      if (zones.size > MAX_ZONES_PER_WORKER) report(`Worker '${script}' is attached to ${zones.size} zones (at most ${MAX_ZONES_PER_WORKER})`, rows[0]!.urn);
    }
  },
};
