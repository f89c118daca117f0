// Reads the inventory's files as they were at a git revision, for `plan --base`.
import { execFileSync } from "node:child_process";
import { relative, resolve } from "node:path";
import { INVENTORY_FILES } from "../../stacks/model/schema.ts";
import { METERING_FILE } from "../../stacks/model/metering.ts";
import type { Sources } from "../../stacks/model/load.ts";
import type { FileKey } from "../../stacks/model/validate.ts";

export class GitError extends Error {}

function git(cwd: string, args: string[]): string {
  try {
    return execFileSync("git", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 256 << 20 });
  } catch (e) {
    const stderr = String((e as { stderr?: unknown }).stderr ?? "").trim().split("\n")[0];
    throw new GitError(stderr || (e as Error).message);
  }
}

/** The inventory's three files at `rev`, named `<rev>:<path>` in problems. */
export function sourcesAtRevision(dir: string, rev: string): Sources {
  const abs = resolve(dir);
  const top = git(abs, ["rev-parse", "--show-toplevel"]).trim();
  let commit: string;
  try {
    commit = git(abs, ["rev-parse", "--verify", "--quiet", `${rev}^{commit}`]).trim();
  } catch {
    throw new GitError(`'${rev}' is not a commit of ${top}`);
  }
  const sources = {} as Sources;
  for (const [key, { file }] of Object.entries(INVENTORY_FILES) as [FileKey, { file: string }][]) {
    const inRepo = relative(top, resolve(abs, file));
    let text: string;
    try {
      text = git(top, ["show", `${commit}:${inRepo}`]);
    } catch {
      throw new GitError(`${inRepo} does not exist at ${rev}`);
    }
    sources[key] = { path: `${rev}:${inRepo}`, text };
  }
  // metering.yaml is optional: read it when the revision has it.
  const metering = relative(top, resolve(abs, METERING_FILE));
  let present = true;
  try {
    git(top, ["cat-file", "-e", `${commit}:${metering}`]);
  } catch {
    present = false;
  }
  if (present) sources.metering = { path: `${rev}:${metering}`, text: git(top, ["show", `${commit}:${metering}`]) };
  return sources;
}
