// A Durable Object class a Worker binds from its own script must have been created by
// a migration, or the upload fails (or, worse, the class is deployed without storage).
import type { ResourceValidationPolicy } from "@pulumi/policy";
import { TYPE } from "../lib/resources.ts";

interface Migration {
  newClasses?: string[];
  newSqliteClasses?: string[];
  renamedClasses?: { to?: string }[];
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
    const migrated = migratedClasses(args.props.migrations as Migration | undefined);
    for (const b of bindings) {
      if (b.type !== "durable_object_namespace" || b.scriptName) continue; // another script's class
      const cls = String(b.className ?? "");
      if (!migrated.has(cls)) report(`${args.name}: Durable Object class '${cls}' (binding '${b.name}') has no migration`);
    }
  },
};
