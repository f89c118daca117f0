// Which Durable Object migrations a script upload must carry, given the script's live
// migration tag: the Worker component (stacks/components/worker.ts) sends this on every
// `pulumi preview`/`up`; the offline plan shows the tags. Pure.
//
// The contract (checked 2026-11-27): Cloudflare compares an upload's `migrations.old_tag`
// with the script's current migration tag and refuses a mismatch with code 10079
// "Migration tag precondition failed"; a missing old_tag means "this script has none"
// (workers-sdk #705, #6953; wrangler-legacy #1992). wrangler's getMigrationsToUpload
// (node_modules/wrangler/wrangler-dist/cli.js, wrangler 4.153.0) is the reference this
// mirrors step for step:
//   - no live tag (a new script, or one that never had migrations): every step, no old_tag;
//   - live tag = the last tag of the config: nothing at all (the script is current);
//   - live tag earlier in the config: old_tag = live tag and only the steps after it;
//   - live tag not in the config: a warning, old_tag = live tag and every step.
import type { WorkerConfig } from "./wrangler.ts";

export type MigrationStep = WorkerConfig["migrations"][number];

/** The provider's (camelCase) form of one step, as cloudflare.WorkersScriptMigrationsStep. */
export interface ProviderMigrationStep {
  newClasses?: string[];
  newSqliteClasses?: string[];
  deletedClasses?: string[];
  renamedClasses?: { from: string; to: string }[];
}

/** The provider's `migrations` input (cloudflare.WorkersScriptMigrations), steps form. */
export interface ProviderMigrations {
  oldTag?: string;
  newTag: string;
  steps: ProviderMigrationStep[];
}

export type MigrationPlan =
  /** The script has no Durable Object migrations in its config. */
  | { status: "none"; upload: undefined; tags: string[] }
  /** The live script is at the config's last tag: send nothing. */
  | { status: "current"; upload: undefined; tags: string[]; live: string }
  /** Send `upload` (steps after the live tag, or all of them). */
  | { status: "apply"; upload: ProviderMigrations; tags: string[]; live: string | null; warning?: string };

/** One step without its tag, empty lists dropped (the upload's step shape). */
export function providerStep(m: MigrationStep): ProviderMigrationStep {
  const s: ProviderMigrationStep = {};
  if (m.newClasses.length) s.newClasses = [...m.newClasses];
  if (m.newSqliteClasses.length) s.newSqliteClasses = [...m.newSqliteClasses];
  if (m.deletedClasses.length) s.deletedClasses = [...m.deletedClasses];
  if (m.renamedClasses.length) s.renamedClasses = m.renamedClasses.map((r) => ({ from: r.from, to: r.to }));
  return s;
}

/**
 * What to upload for a script whose config lists `steps` (in order) and whose live
 * migration tag is `live` (null: no script, or a script without a tag).
 */
export function migrationsToUpload(script: string, steps: readonly MigrationStep[], live: string | null): MigrationPlan {
  const tags = steps.map((s) => s.tag);
  if (steps.length === 0) return { status: "none", upload: undefined, tags };
  const newTag = tags[tags.length - 1]!;
  if (live === null || live === "") return { status: "apply", upload: { newTag, steps: steps.map(providerStep) }, tags, live: null };
  const at = tags.indexOf(live);
  if (at === -1) {
    return {
      status: "apply",
      upload: { oldTag: live, newTag, steps: steps.map(providerStep) },
      tags,
      live,
      warning: `the live script ${script} has migration tag '${live}', which its wrangler.jsonc does not list (${tags.join(", ")}); sending every migration with old_tag '${live}', as wrangler does. Add the missing tag to wrangler.jsonc if those migrations were applied elsewhere.`,
    };
  }
  if (at === tags.length - 1) return { status: "current", upload: undefined, tags, live };
  return { status: "apply", upload: { oldTag: live, newTag, steps: steps.slice(at + 1).map(providerStep) }, tags, live };
}
