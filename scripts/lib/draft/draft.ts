// `npm run draft -- "REQUEST"`: Claude drafts inventory edits for a request in plain
// words; edgefleet parses them, applies them to a copy of zones.yaml, validates the
// result like any inventory, computes the plan diff and the safety guard, and hands
// the change over for review as a patch or a new branch. It never writes to the
// current branch, the working tree outside the patch file, or deploys anything.
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import { Command } from "commander";
import { deriveDesiredState } from "../../../stacks/model/desired.ts";
import { applyGuard, diffStates, type GuardVerdict, type PlanDiff } from "../../../stacks/model/diff.ts";
import { formatProblem, parseInventory, readSources } from "../../../stacks/model/load.ts";
import { readStackSettings } from "../stack-config.ts";
import { applyEdits } from "./apply.ts";
import {
  AnswerError,
  AnswerTooLarge,
  ApiFailure,
  askClaude,
  BudgetError,
  buildRequest,
  cappedFetch,
  DEFAULT_BUDGET,
  DEFAULT_MODEL,
  MAX_ANSWER_BYTES,
} from "./claude.ts";
import { DraftInput, type Edit } from "./edits.ts";
import { commitFiles, createBranch, dirtyPaths, DraftGitError, formatPatch, repoRoot, unifiedDiff } from "./git-objects.ts";
import { parseArgs } from "../cli.ts";

export const DRAFT_EXIT = {
  ok: 0,
  /** The draft was refused: the answer is not one valid, complete tool call of edits (cut off at
   * max_tokens, several calls, over the size cap), names unknown things, changes zones it does not
   * name, removes a zone fleet/sites serves, or its result is invalid. */
  refused: 1,
  /** Bad usage or set-up: no API key, unknown option, uncommitted inventory changes, existing branch. */
  usage: 2,
  /** The plan's safety guard refused the change (use --force after review). */
  guard: 3,
  /** The Messages API failed after retries, answered with a body that is not a Messages API
   * response (not JSON, truncated, wrong shape), or the request is over the token budget. */
  api: 4,
} as const;

export interface DraftIO {
  out: (s: string) => void;
  err: (s: string) => void;
  root: string;
  env: NodeJS.ProcessEnv;
  /** For tests: a fixed clock for patch file names. */
  now?: () => Date;
}

interface DraftOptions {
  inventory?: string;
  stack: string;
  model: string;
  budget: string;
  maxRetries: string;
  patch?: string;
  branch?: string;
  force?: boolean;
  json?: boolean;
}

function command(io: DraftIO): Command {
  return new Command("draft")
    .description(
      "Draft an inventory change with Claude from a request in plain words, validate it, show its plan diff,\n" +
        "and write it as a patch (default drafts/<time>-<words>.patch) or a new branch for review.\n" +
        "Needs ANTHROPIC_API_KEY (ANTHROPIC_BASE_URL overrides the API's address).\n" +
        "Exit codes: 0 drafted, 1 refused, 2 bad usage or set-up, 3 refused by the safety guard, 4 API failed (error, unreadable answer) or over budget.",
    )
    .argument("<request...>", "the change, in plain words")
    .option("--inventory <dir>", "inventory directory (default: the stack's, else fleet)")
    .option("--stack <name>", "Pulumi stack whose Pulumi.<name>.yaml names the inventory", "prod")
    .option("--model <id>", "Claude model", DEFAULT_MODEL)
    .option("--budget <tokens>", "refuse requests above this many input tokens (counted before the call)", String(DEFAULT_BUDGET))
    .option("--max-retries <n>", "retries on 429, 529 and 5xx (with the SDK's backoff, honouring retry-after)", "4")
    .option("--patch <file>", "write the patch here")
    .option("--branch <name>", "commit the draft to this new branch (the current branch is never touched)")
    .option("--force", "accept a change the safety guard refuses")
    .option("--json", "print the result as JSON")
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });
}

export async function runDraft(argv: string[], io: DraftIO): Promise<number> {
  const cmd = command(io);
  const stop = parseArgs(cmd, argv, DRAFT_EXIT);
  if (stop !== undefined) return stop;
  const opts = cmd.opts<DraftOptions>();
  const request = (cmd.args as string[]).join(" ").trim();
  const fail = (code: number, text: string, extra: Record<string, unknown> = {}) => {
    // Messages quote the model's strings (a zone name zod refused, a tool name): never let
    // them carry terminal control sequences to the operator's screen.
    const message = text.replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g, "?");
    if (opts.json) io.out(`${JSON.stringify({ ok: false, error: message, ...extra }, null, 2)}\n`);
    io.err(`draft: ${message}\n`);
    return code;
  };

  const apiKey = io.env.ANTHROPIC_API_KEY;
  if (!apiKey) return fail(DRAFT_EXIT.usage, "ANTHROPIC_API_KEY is not set: export it (a Console API key) and run again");
  const budget = Number(opts.budget);
  const maxRetries = Number(opts.maxRetries);
  if (!Number.isInteger(budget) || budget <= 0) return fail(DRAFT_EXIT.usage, `--budget must be a positive number of tokens, not '${opts.budget}'`);
  if (!Number.isInteger(maxRetries) || maxRetries < 0) return fail(DRAFT_EXIT.usage, `--max-retries must be a whole number, not '${opts.maxRetries}'`);

  const settings = readStackSettings(io.root, opts.stack);
  const invDir = resolve(io.root, opts.inventory ?? settings.inventory ?? "fleet");
  let root: string;
  try {
    root = repoRoot(invDir);
  } catch (e) {
    return fail(DRAFT_EXIT.usage, (e as Error).message);
  }
  const sources = readSources(invDir, root);
  const current = parseInventory(invDir, sources);
  if (!current.ok) {
    return fail(DRAFT_EXIT.refused, `the current inventory is invalid; fix it first:\n${current.problems.map((p) => `  ${formatProblem(p)}`).join("\n")}`);
  }
  const inventoryPaths = [sources.fleet.path, sources.profiles.path, sources.zones.path];
  const dirty = dirtyPaths(root, inventoryPaths);
  if (dirty.length > 0) return fail(DRAFT_EXIT.usage, `commit or stash your changes to ${dirty.join(", ")} first: a draft is reviewed against HEAD`);

  // Ask Claude.
  const client = new Anthropic({ apiKey, baseURL: io.env.ANTHROPIC_BASE_URL || undefined, maxRetries, fetch: cappedFetch(MAX_ANSWER_BYTES) });
  const params = buildRequest(opts.model, { fleet: sources.fleet.text, profiles: sources.profiles.text, zones: sources.zones.text }, request);
  let answer;
  try {
    answer = await askClaude(client, params, budget);
  } catch (e) {
    const redact = (s: string) => s.replaceAll(apiKey, "<ANTHROPIC_API_KEY>");
    if (e instanceof BudgetError) return fail(DRAFT_EXIT.api, e.message);
    if (e instanceof AnswerError || e instanceof AnswerTooLarge) return fail(DRAFT_EXIT.refused, `${redact(e.message)}; nothing was written`);
    if (e instanceof Anthropic.APIError) {
      const status = e.status ? `HTTP ${e.status}` : "no response";
      const type = (e.error as { error?: { type?: string } } | undefined)?.error?.type;
      return fail(DRAFT_EXIT.api, `API failed: the Messages API failed (${status}${type ? `, ${type}` : ""}) after ${maxRetries} retries; nothing was written`);
    }
    // Anything else from the client is an answer it could not read: a body that is not
    // JSON, one cut off mid-way, or a shape that is not a message. Exit 4, no stack trace.
    const what = e instanceof ApiFailure ? e.message : `its answer could not be read (${e instanceof Error ? `${e.name}: ${e.message}` : String(e)})`;
    return fail(DRAFT_EXIT.api, `API failed: ${redact(what).split("\n")[0]}; nothing was written`);
  }

  // Only edits can come out of the answer: parse them, never execute anything.
  const parsed = DraftInput.safeParse(answer.input);
  if (!parsed.success) {
    const reasons = parsed.error.issues.slice(0, 10).map((i) => `  ${i.path.join(".") || "(input)"}: ${i.message}`);
    return fail(DRAFT_EXIT.refused, `the answer is not a valid edit; nothing was written:\n${reasons.join("\n")}`);
  }
  const { edits } = parsed.data;
  // The model's words reach a terminal, a commit message and a patch that `git am` reads:
  // one line of plain text, so they can carry no escape sequence, and no line of their own
  // that git's mail parser would take for the start of a diff ("---", "diff -", "Index:").
  const rationale = oneLine(parsed.data.rationale);
  if (edits.length === 0) return fail(DRAFT_EXIT.refused, `the model proposed no edits: ${rationale}`, { rationale });

  const applied = applyEdits(sources.zones.text, current.inventory, edits);
  if (!applied.ok) return fail(DRAFT_EXIT.refused, `the edits were refused; nothing was written:\n${applied.problems.map((p) => `  ${p}`).join("\n")}`, { rationale, edits });

  const draftSources = { ...sources, zones: { path: `${sources.zones.path} (draft)`, text: applied.text } };
  const next = parseInventory(invDir, draftSources);
  if (!next.ok) {
    return fail(
      DRAFT_EXIT.refused,
      `the drafted inventory is invalid; nothing was written:\n${next.problems.map((p) => `  ${formatProblem(p)}`).join("\n")}`,
      { rationale, edits, problems: next.problems },
    );
  }

  // A zone the router still serves from fleet/sites/<host>/ cannot go (as a Worker's
  // domains cannot: validation refuses a domain outside the inventory's zones).
  const kept = new Set(next.inventory.zones.map((z) => z.name));
  const orphaned = current.inventory.zones
    .filter((z) => !kept.has(z.name))
    .flatMap((z) => siteHosts(join(invDir, "sites")).filter((h) => h === z.name || h.endsWith(`.${z.name}`)).map((h) => ({ zone: z.name, host: h })));
  if (orphaned.length > 0) {
    return fail(
      DRAFT_EXIT.refused,
      `the edits remove zones that fleet/sites still serves; remove the sites first:\n${orphaned.map((o) => `  ${o.zone}: ${relative(root, join(invDir, "sites", o.host))}/`).join("\n")}`,
      { rationale, edits },
    );
  }

  const accountId = settings.accountId ?? "<account-id>";
  const diff = diffStates(deriveDesiredState(current.inventory, { accountId }), deriveDesiredState(next.inventory, { accountId }));
  const verdict = applyGuard(diff, current.inventory.fleet.guard, next.inventory.fleet.guard);
  if (!verdict.ok && !opts.force) {
    return fail(
      DRAFT_EXIT.guard,
      `refused by the safety guard; nothing was written (re-run with --force after review):\n${verdict.violations.map((v) => `  - ${v}`).join("\n")}`,
      { rationale, edits, diff: diff.totals, guard: verdict },
    );
  }

  // Hand it over for review: a commit object on top of HEAD, as a patch and/or a branch.
  const message = `Draft: ${oneLine(request)}\n\nRationale: ${rationale}\n\nPlan: +${diff.totals.added} ~${diff.totals.changed} -${diff.totals.removed} records in ${diff.totals.zonesTouched} zone(s).\nDrafted by ${opts.model} through edgefleet; review before merging.\n`;
  let commit: string;
  let patchPath: string | undefined;
  try {
    commit = commitFiles(root, new Map([[sources.zones.path, applied.text]]), message);
    if (opts.branch) createBranch(root, opts.branch, commit);
    if (opts.patch || !opts.branch) {
      patchPath = resolve(io.root, opts.patch ?? join("drafts", `${stamp(io.now?.() ?? new Date())}-${slug(request)}.patch`));
      mkdirSync(dirname(patchPath), { recursive: true });
      writeFileSync(patchPath, formatPatch(root, commit));
    }
  } catch (e) {
    if (e instanceof DraftGitError) return fail(DRAFT_EXIT.usage, e.message);
    throw e;
  }
  const unified = unifiedDiff(root, commit);
  const result = {
    ok: true,
    request,
    rationale,
    edits,
    zonesTouched: applied.touched,
    plan: { totals: diff.totals, zones: diff.zones },
    guard: { ...verdict, forced: !verdict.ok && !!opts.force },
    commit,
    branch: opts.branch,
    patch: patchPath && relative(io.root, patchPath),
    usage: answer.usage,
    inputTokens: answer.inputTokens,
    diff: unified,
  };
  if (opts.json) io.out(`${JSON.stringify(result, null, 2)}\n`);
  else io.out(render(result, diff, verdict, edits));
  return DRAFT_EXIT.ok;
}

/** The hosts of the router's sites: the folders of <inventory>/sites (fleet/sites/<host>/). */
function siteHosts(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name.toLowerCase());
}

/** Text on one line without control characters (C0, DEL, C1, line and paragraph separators). */
export function oneLine(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, " ").replace(/\s+/g, " ").trim();
}

function stamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z").replace("T", "-");
}

function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, "-").slice(0, 40).replace(/^-+|-+$/g, "") || "draft";
}

function render(
  r: { rationale: string; patch?: string; branch?: string; commit: string; diff: string },
  diff: PlanDiff,
  verdict: GuardVerdict,
  edits: Edit[],
): string {
  const { added, changed, removed, zonesTouched, zonesBefore } = diff.totals;
  const lines = [
    `Rationale: ${r.rationale}`,
    "",
    `Edits: ${edits.length}; plan: +${added} ~${changed} -${removed} records in ${zonesTouched} of ${zonesBefore} zones`,
    ...diff.zones.slice(0, 30).map((z) => `  ${z.zone}  ${z.status}  +${z.added} ~${z.changed} -${z.removed}`),
    ...(diff.zones.length > 30 ? [`  ... ${diff.zones.length - 30} more zones`] : []),
    `Safety guard: ${verdict.ok ? "ok" : `forced past ${verdict.violations.length} violation(s)`}`,
    "",
    r.diff.trimEnd(),
    "",
    r.branch ? `Committed to the new branch '${r.branch}' (${r.commit.slice(0, 12)}); the current branch is unchanged.` : "",
    r.patch ? `Patch written to ${r.patch}; apply it with: git am ${r.patch}` : "",
  ];
  return `${lines.filter((l, i) => l !== "" || lines[i - 1] !== "").join("\n")}\n`;
}
