// A Durable Object class a Worker binds from its own script must have been created by
// a migration, or the upload fails (or, worse, the class is deployed without storage).
// What a resource carries depends on the live script (docs/deploys.md): every step for a
// new script (and in `npm run plan`), only the steps after `oldTag` for a script that has
// a tag, nothing for a script that is current. Only the first shows every class; then
// the policy checks only that the later steps do not delete a class still bound, and the
// full list is checked where it lives, in wrangler.jsonc (stacks/model/wrangler.ts).
import type { ResourceValidationPolicy } from "@pulumi/policy";
import { TYPE } from "../lib/resources.ts";

interface Migration {
  oldTag?: string;
  newClasses?: string[];
  deletedClasses?: string[];
  newSqliteClasses?: string[];
  renamedClasses?: { from?: string; to?: string }[];
  transferredClasses?: { to?: string }[];
  steps?: Migration[];
}

function migratedClasses(m: Migration | undefined): Set<string> {
  const out = new Set<string>();
  if (!m) return out;
  for (const step of [m, ...(m.steps ?? [])]) {
    for (const c of [...(step.newClasses ?? []), ...(step.newSqliteClasses ?? [])]) out.add(c);
    for (const r of [...(step.renamedClasses ?? []), ...(step.transferredClasses ?? [])]) if (r.to) out.add(r.to);
  }
  return out;
}

export const durableObjectMigrations: ResourceValidationPolicy = {
  name: "durable-object-migrations",
  description: "Every Durable Object class a Worker binds from its own script appears in its migrations.",
  enforcementLevel: "mandatory",
  validateResource: (args, report) => {
    if (args.type !== TYPE.workersScript) return;
    const bindings = Array.isArray(args.props.bindings) ? (args.props.bindings as Record<string, unknown>[]) : [];
    const m = args.props.migrations as Migration | undefined;
    const own = bindings.filter((b) => b.type === "durable_object_namespace" && !b.scriptName); // not another script's class
    if (m && !m.oldTag) {
      const migrated = migratedClasses(m);
      for (const b of own) {
        const cls = String(b.className ?? "");
        if (!migrated.has(cls)) report(`${args.name}: Durable Object class '${cls}' (binding '${b.name}') has no migration`);
      }
      return;
    }
    // Steps after the live tag (or none): a class still bound must not go away.
    const gone = new Set<string>();
    for (const step of m ? [m, ...(m.steps ?? [])] : []) {
      for (const c of step.deletedClasses ?? []) gone.add(c);
      for (const r of step.renamedClasses ?? []) if (r.from) gone.add(r.from);
      for (const c of migratedClasses({ ...step, steps: undefined })) gone.delete(c);
    }
    for (const b of own) {
      const cls = String(b.className ?? "");
      if (gone.has(cls)) report(`${args.name}: Durable Object class '${cls}' (binding '${b.name}') is deleted by a migration after ${m!.oldTag}`);
    }
  },
};
