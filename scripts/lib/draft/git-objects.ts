// Writes a drafted change into git as a commit object on top of HEAD without touching
// the working tree, the index or the current branch (a private index file and git's
// plumbing), then renders it as a patch or points a new branch at it.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export class DraftGitError extends Error {}

const IDENTITY = { GIT_AUTHOR_NAME: "edgefleet draft", GIT_AUTHOR_EMAIL: "draft@edgefleet.invalid", GIT_COMMITTER_NAME: "edgefleet draft", GIT_COMMITTER_EMAIL: "draft@edgefleet.invalid" };

export function git(root: string, args: string[], opts: { input?: string; env?: Record<string, string> } = {}): string {
  try {
    return execFileSync("git", args, { cwd: root, encoding: "utf8", input: opts.input, env: { ...process.env, ...opts.env }, stdio: ["pipe", "pipe", "pipe"], maxBuffer: 256 << 20 });
  } catch (e) {
    const stderr = String((e as { stderr?: unknown }).stderr ?? "").trim();
    throw new DraftGitError(`git ${args[0]}: ${stderr.split("\n")[0] || (e as Error).message}`);
  }
}

export function repoRoot(dir: string): string {
  try {
    return git(dir, ["rev-parse", "--show-toplevel"]).trim();
  } catch {
    throw new DraftGitError(`${dir} is not inside a git repository: a draft is a commit for review`);
  }
}

/** Paths (relative to root) whose working-tree content differs from HEAD. */
export function dirtyPaths(root: string, paths: string[]): string[] {
  return git(root, ["status", "--porcelain", "--", ...paths])
    .split("\n")
    .filter(Boolean)
    .map((l) => l.slice(3));
}

/** A commit on top of HEAD whose tree is HEAD's with `files` replaced. Touches no ref. */
export function commitFiles(root: string, files: Map<string, string>, message: string): string {
  const scratch = mkdtempSync(join(tmpdir(), "edgefleet-draft-index-"));
  const env = { ...IDENTITY, GIT_INDEX_FILE: join(scratch, "index") };
  try {
    git(root, ["read-tree", "HEAD"], { env });
    for (const [path, text] of files) {
      const blob = git(root, ["hash-object", "-w", "--stdin", "--path", path], { input: text }).trim();
      git(root, ["update-index", "--add", "--cacheinfo", `100644,${blob},${path}`], { env });
    }
    const tree = git(root, ["write-tree"], { env }).trim();
    return git(root, ["commit-tree", tree, "-p", "HEAD", "-F", "-"], { env, input: message }).trim();
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

export function unifiedDiff(root: string, commit: string): string {
  return git(root, ["diff", "--no-color", `${commit}^`, commit]);
}

export function formatPatch(root: string, commit: string): string {
  return git(root, ["format-patch", "--stdout", "-1", commit]);
}

/** Creates a new branch at `commit`; refuses a name that exists or is not a valid branch name. */
export function createBranch(root: string, name: string, commit: string): void {
  try {
    git(root, ["check-ref-format", "--branch", name]);
  } catch {
    throw new DraftGitError(`'${name}' is not a valid branch name`);
  }
  try {
    // The empty old value makes git refuse to move a branch that already exists.
    git(root, ["update-ref", `refs/heads/${name}`, commit, ""]);
  } catch {
    throw new DraftGitError(`branch '${name}' already exists; choose another name`);
  }
}
