// A bucket that holds archives (request and response bodies: tenants' data, kept for a
// set time) must delete them when that time is up, by a lifecycle rule: an enabled rule
// over the whole bucket (empty prefix) that deletes objects by age. "Holds archives" is
// defined once, in stacks/model/metering.ts (holdsArchives): a bucket bound as ARCHIVE or
// *_ARCHIVE by a Worker of the stack, or one with the word "archive" in its name.
import type { PolicyResource, StackValidationPolicy } from "@pulumi/policy";
import { holdsArchives } from "../../stacks/model/metering.ts";
import { TYPE } from "../lib/resources.ts";

type Rule = { enabled?: unknown; conditions?: { prefix?: unknown }; deleteObjectsTransition?: { condition?: { type?: unknown; maxAge?: unknown } } };

/** Whether a rule deletes every object of the bucket once it reaches an age. */
function retains(rule: Rule): boolean {
  const c = rule.deleteObjectsTransition?.condition;
  return rule.enabled === true && rule.conditions?.prefix === "" && c?.type === "Age" && typeof c.maxAge === "number" && c.maxAge > 0;
}

export const r2ArchiveLifecycle: StackValidationPolicy = {
  name: "r2-archive-lifecycle",
  description: "An R2 bucket that holds archives (bound as ARCHIVE or *_ARCHIVE, or named with 'archive') has an enabled lifecycle rule that deletes every object by age.",
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    // Archive buckets, and where each was seen (a bucket resource, or the script binding it).
    const archives = new Map<string, PolicyResource>();
    for (const r of args.resources) {
      if (r.type === TYPE.r2Bucket && holdsArchives(String(r.props.name ?? ""))) archives.set(String(r.props.name), r);
      if (r.type !== TYPE.workersScript || !Array.isArray(r.props.bindings)) continue;
      for (const b of r.props.bindings as Record<string, unknown>[]) {
        if (b.type === "r2_bucket" && typeof b.bucketName === "string" && holdsArchives(b.bucketName, String(b.name ?? "")) && !archives.has(b.bucketName)) archives.set(b.bucketName, r);
      }
    }
    const lifecycles = args.resources.filter((r) => r.type === TYPE.r2BucketLifecycle);
    for (const [bucket, at] of archives) {
      const mine = lifecycles.filter((l) => l.props.bucketName === bucket);
      const rules = mine.flatMap((l) => (Array.isArray(l.props.rules) ? (l.props.rules as Rule[]) : []));
      if (mine.length === 0) report(`R2 bucket '${bucket}' holds archives but has no lifecycle rule: its objects would be kept forever (set archive.retention_days in metering.yaml)`, at.urn);
      else if (!rules.some(retains)) report(`R2 bucket '${bucket}' holds archives but no enabled rule of its lifecycle deletes every object by age (empty prefix, deleteObjectsTransition of type Age)`, mine[0]!.urn);
    }
  },
};
