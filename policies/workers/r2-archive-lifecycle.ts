// A bucket that holds archives (request and response bodies: tenants' data, kept for a
// set time) must delete them when that time is up, by a lifecycle rule: an enabled rule
// over the whole bucket (empty prefix) that deletes objects by age. "Holds archives" is
// defined once, in stacks/model/metering.ts (holdsArchives): a bucket bound as ARCHIVE or
// *_ARCHIVE by a Worker of the stack, or one with the word "archive" in its name.
import type { PolicyResource, StackValidationPolicy } from "@pulumi/policy";
import { holdsArchives } from "../../stacks/model/metering.ts";
import { TYPE } from "../lib/resources.ts";

type Rule = { enabled?: unknown; conditions?: { prefix?: unknown }; deleteObjectsTransition?: { condition?: { type?: unknown; maxAge?: unknown } } };

/** The longest age a retention rule may set: ten years, in seconds (maxAge's unit). A
 *  rule of 1e12 seconds deletes nothing in practice. */
export const MAX_ARCHIVE_AGE_SECONDS = 3650 * 86_400;

/** Whether a rule deletes every object of the bucket once it reaches an age. */
function retains(rule: Rule): boolean {
  const c = rule.deleteObjectsTransition?.condition;
  return rule.enabled === true && rule.conditions?.prefix === "" && c?.type === "Age" && typeof c.maxAge === "number" && c.maxAge > 0 && c.maxAge <= MAX_ARCHIVE_AGE_SECONDS;
}

/** A bucket's jurisdiction as the provider says it (absent: the default one). */
const jurisdiction = (props: Record<string, unknown>) => (typeof props.jurisdiction === "string" && props.jurisdiction !== "" ? props.jurisdiction : "default");

export const r2ArchiveLifecycle: StackValidationPolicy = {
  name: "r2-archive-lifecycle",
  description: "An R2 bucket that holds archives (bound as ARCHIVE or *_ARCHIVE, or named with 'archive') has an enabled lifecycle rule that deletes every object by age.",
  enforcementLevel: "mandatory",
  validateStack: (args, report) => {
    // Archive buckets by name and jurisdiction (two buckets may share a name, one in each),
    // and where each was seen (a bucket resource, or the script binding it).
    const archives = new Map<string, { bucket: string; where: string; at: PolicyResource }>();
    const add = (bucket: string, where: string, at: PolicyResource) => {
      const key = `${where}/${bucket}`;
      if (!archives.has(key)) archives.set(key, { bucket, where, at });
    };
    for (const r of args.resources) {
      if (r.type === TYPE.r2Bucket && holdsArchives(String(r.props.name ?? ""))) add(String(r.props.name), jurisdiction(r.props), r);
      if (r.type !== TYPE.workersScript || !Array.isArray(r.props.bindings)) continue;
      for (const b of r.props.bindings as Record<string, unknown>[]) {
        if (b.type === "r2_bucket" && typeof b.bucketName === "string" && holdsArchives(b.bucketName, String(b.name ?? ""))) add(b.bucketName, jurisdiction(b), r);
      }
    }
    const lifecycles = args.resources.filter((r) => r.type === TYPE.r2BucketLifecycle);
    for (const { bucket: name, where, at } of archives.values()) {
      // A lifecycle of the same name in another jurisdiction is another bucket's.
      const bucket = where === "default" ? `'${name}'` : `'${name}' (jurisdiction ${where})`;
      const mine = lifecycles.filter((l) => l.props.bucketName === name && jurisdiction(l.props) === where);
      const rules = mine.flatMap((l) => (Array.isArray(l.props.rules) ? (l.props.rules as Rule[]) : []));
      if (mine.length === 0) report(`R2 bucket ${bucket} holds archives but has no lifecycle rule: its objects would be kept forever (set archive.retention_days in metering.yaml)`, at.urn);
      // A lifecycle configuration replaces the bucket's whole rule set: of two, the one
      // applied last wins, and it may be the one without the retention rule.
      else if (mine.length > 1) report(`R2 bucket ${bucket} has ${mine.length} lifecycle configurations (${mine.map((l) => l.name).join(", ")}); each replaces the bucket's whole rule set, so only one may exist`, mine[1]!.urn);
      else if (!rules.some(retains)) report(`R2 bucket ${bucket} holds archives but no enabled rule of its lifecycle deletes every object by age, within ${MAX_ARCHIVE_AGE_SECONDS / 86_400} days (empty prefix, deleteObjectsTransition of type Age)`, mine[0]!.urn);
    }
  },
};
