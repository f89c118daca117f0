// `npm run rotate -- SECRET_NAME`: the command line of the ordered key rotation. Reads
// the options, the keys (environment or stdin, never argv), the Workers (desired state
// or --workers FILE) and the journal, wires the real clients to the engine
// (scripts/lib/rotate/engine.ts), and reports progress for humans or as JSON events.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Command, InvalidArgumentError, Option } from "commander";
import { z } from "zod";
import { deriveDesiredState } from "../../../stacks/model/desired.ts";
import { formatProblem, loadInventory } from "../../../stacks/model/load.ts";
import { readStackSettings } from "../stack-config.ts";
import { anthropicProvider } from "./anthropic.ts";
import { cloudflareSecrets } from "./cloudflare.ts";
import { DEFAULT_TIMING, planOf, resumeRotation, startRotation, type Outcome, type RotationEvent } from "./engine.ts";
import { FINISHED, JournalError, JournalStore, type Journal } from "./journal.ts";
import { pulumiConfigPersister } from "./persist.ts";
import { RateLimiter } from "./rate-limit.ts";
import { createReporter, redactor } from "./report.ts";
import { statusReader } from "./status.ts";
import { workersBindingSecret, type DesiredWorker } from "./workers.ts";
import { newCommand, parseArgs, UsageError, apiBaseUrl } from "../cli.ts";

/** Exit codes of `npm run rotate` (docs/rotation.md). */
export const ROTATE_EXIT = {
  /** Rotated (or the dry run printed its plan). */
  ok: 0,
  /** Failed: preflight refused (nothing changed), or an unexpected error. */
  failed: 1,
  /** Bad command line or set-up (missing key, token, unknown secret, no journal). */
  usage: 2,
  /** Confirmation failed and the old key was restored everywhere; nothing revoked. */
  rolledBack: 3,
  /** Stopped part-way (Ctrl-C, latest version not deployed, API failure, no Pulumi CLI, a roll back that did not confirm): run --resume. */
  resume: 4,
} as const;

/** Secrets the command can rotate, and the provider that checks and revokes them. */
export const PROVIDERS: Record<string, "anthropic"> = { ANTHROPIC_API_KEY: "anthropic" };

export interface RotateIO {
  out: (s: string) => void;
  err: (s: string) => void;
  /** Repository root (Pulumi.<stack>.yaml, .edgefleet/). */
  root: string;
  env: NodeJS.ProcessEnv;
  /** All of stdin (only read when a key is not in the environment). */
  readStdin: () => Promise<string>;
  stdinIsTTY: boolean;
  /** Draw a progress bar (stderr is a TTY and not --json). */
  tty: boolean;
  signal?: AbortSignal;
  now?: () => Date;
}

interface Options {
  dryRun?: boolean;
  json?: boolean;
  resume?: string | true;
  rollback?: boolean;
  persistedByHand?: boolean;
  keepOld?: boolean;
  stack: string;
  inventory?: string;
  workers?: string;
  confirmations: number;
  confirmTimeout: number;
  pollInterval: number;
  settle: number;
  concurrency: number;
  statusConcurrency: number;
  rateLimit: { limit: number; windowMs: number };
  newKeyEnv: string;
  oldKeyEnv: string;
  journalDir: string;
  pulumiBin: string;
  cloudflareBaseUrl?: string;
  anthropicBaseUrl?: string;
  statusVia?: string;
}

const positiveInt = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a whole number >= 1`);
  return n;
};
const positiveSeconds = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a number of seconds > 0`);
  return n;
};
const rateLimit = (v: string) => {
  const m = /^(\d+)\/(\d+(?:\.\d+)?)$/.exec(v);
  if (!m || Number(m[1]) < 1 || Number(m[2]) <= 0) throw new InvalidArgumentError("expected REQUESTS/SECONDS, e.g. 1000/300");
  return { limit: Number(m[1]), windowMs: Number(m[2]) * 1000 };
};

function command(io: RotateIO): Command {
  return newCommand("rotate", io)
    .description(
      "Rotate a provider key on every Worker that binds it, in the one safe order:\n" +
        "  preflight -> stage (canary first) -> confirm -> persist (Pulumi config) -> revoke.\n" +
        "A Worker that does not confirm rolls the rotation back; nothing is revoked then.\n\n" +
        "Keys come from the environment (EDGEFLEET_NEW_KEY, EDGEFLEET_OLD_KEY) or stdin\n" +
        "(line 1 the new key, line 2 the old key); never from the command line. Also:\n" +
        "  CLOUDFLARE_API_TOKEN, EDGEFLEET_OPERATOR_TOKEN, ANTHROPIC_ADMIN_KEY (not with --keep-old).\n\n" +
        "Exit codes: 0 rotated, 1 failed (preflight refused), 2 bad usage, 3 rolled back,\n" +
        "  4 stopped part-way (or a roll back incomplete): fix the cause named, then --resume.",
    )
    .argument("[secret]", `the secret binding to rotate (${Object.keys(PROVIDERS).join(", ")})`)
    .option("--dry-run", "print the plan (Workers, order, steps) and change nothing")
    .option("--json", "write a JSON event log on stdout, one event per line")
    .option("--resume [id]", "continue an interrupted rotation from its journal (the one open rotation, or <id>)")
    .option("--rollback", "with --resume: roll the rotation back instead of completing it (before persist only)")
    .option("--persisted-by-hand", "with --resume: you ran `pulumi config set --secret` yourself; skip persist")
    .option("--keep-old", "do not revoke the old key at the end")
    .option("--stack <name>", "Pulumi stack: Pulumi.<name>.yaml gives the account and inventory; persist sets its config", "prod")
    .option("--inventory <dir>", "inventory directory (default: the stack's edgefleet:inventory, else fleet)")
    .option("--workers <file>", "a JSON list of DesiredWorker to rotate instead of the desired state's")
    .option("--confirmations <n>", "times in a row each Worker must report the new key", positiveInt("--confirmations"), 3)
    .option("--confirm-timeout <seconds>", "how long confirmation may take", positiveSeconds("--confirm-timeout"), DEFAULT_TIMING.confirmTimeoutMs / 1000)
    .option("--poll-interval <seconds>", "pause between two status reads of one Worker", positiveSeconds("--poll-interval"), DEFAULT_TIMING.pollIntervalMs / 1000)
    .option("--settle <seconds>", "wait after the last confirmation before the final sweep and revoke (edge propagation, and requests still running on old isolates with the old key: raise it to your longest streamed response)", (v: string) => {
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError("--settle must be a number of seconds >= 0");
      return n;
    }, DEFAULT_TIMING.settleMs / 1000)
    .option("--concurrency <n>", "secret updates in flight at once (after the canaries)", positiveInt("--concurrency"), 8)
    .option("--status-concurrency <n>", "status reads in flight at once", positiveInt("--status-concurrency"), DEFAULT_TIMING.statusConcurrency)
    .addOption(
      new Option("--rate-limit <requests/seconds>", "client-side cap on Cloudflare API calls (the account's limit, 1200/300, is shared with every token and the dashboard)")
        .argParser(rateLimit)
        .default({ limit: 1000, windowMs: 300_000 }, "1000/300"),
    )
    .option("--new-key-env <name>", "environment variable holding the new key", "EDGEFLEET_NEW_KEY")
    .option("--old-key-env <name>", "environment variable holding the old key", "EDGEFLEET_OLD_KEY")
    .option("--journal-dir <dir>", "where rotation journals live", ".edgefleet/rotations")
    .option("--pulumi-bin <path>", "the Pulumi CLI used to persist the new key", "pulumi")
    .option("--cloudflare-base-url <url>", "Cloudflare API base URL (default: CLOUDFLARE_BASE_URL or the SDK's)")
    .option("--anthropic-base-url <url>", "Anthropic API base URL (default: ANTHROPIC_BASE_URL or the SDK's)")
    .option("--status-via <url>", "send status reads to <url>/<host><path> (a loopback fake or a staging proxy)");
}

const WorkersFile = z.array(
  z.object({
    script: z.string().min(1),
    source: z.string(),
    canary: z.boolean(),
    secrets: z.array(z.object({ binding: z.string(), config: z.string() })),
    hostnames: z.array(z.string()),
    statusUrl: z.string().url().nullable(),
  }),
);

function readWorkers(io: RotateIO, opts: Options, secret: string): { workers: DesiredWorker[]; accountId: string; source: string } {
  const settings = readStackSettings(io.root, opts.stack);
  const accountId = io.env.CLOUDFLARE_ACCOUNT_ID ?? settings.accountId ?? "";
  if (opts.workers) {
    const file = resolve(io.root, opts.workers);
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file, "utf8"));
    } catch (e) {
      throw new UsageError(`--workers ${opts.workers}: ${(e as Error).message}`);
    }
    const r = WorkersFile.safeParse(raw);
    if (!r.success) throw new UsageError(`--workers ${opts.workers}: ${r.error.issues.slice(0, 5).map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
    return { workers: workersBindingSecret(r.data, secret), accountId, source: opts.workers };
  }
  const dir = opts.inventory ?? settings.inventory ?? "fleet";
  const loaded = loadInventory(resolve(io.root, dir), io.root);
  if (!loaded.ok) throw new UsageError(`the inventory ${dir} is invalid:\n${loaded.problems.map((p) => `  ${formatProblem(p)}`).join("\n")}`);
  const state = deriveDesiredState(loaded.inventory, { accountId: accountId || "<account-id>" });
  return { workers: workersBindingSecret(state.workers, secret), accountId, source: dir };
}

async function readKeys(io: RotateIO, opts: Options): Promise<{ newKey: string; oldKey: string }> {
  let newKey = io.env[opts.newKeyEnv]?.trim() || undefined;
  let oldKey = io.env[opts.oldKeyEnv]?.trim() || undefined;
  if ((newKey === undefined || oldKey === undefined) && !io.stdinIsTTY) {
    const lines = (await io.readStdin()).split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "");
    if (newKey === undefined) newKey = lines.shift();
    if (oldKey === undefined) oldKey = lines.shift();
  }
  if (!newKey) throw new UsageError(`no new key: set ${opts.newKeyEnv} or pipe it on stdin (first line)`);
  if (!oldKey) throw new UsageError(`no old key (needed to check the fleet and to roll back): set ${opts.oldKeyEnv} or pipe it on stdin (second line)`);
  return { newKey, oldKey };
}

function need(io: RotateIO, name: string, why: string): string {
  const v = io.env[name];
  if (!v) throw new UsageError(`${name} is not set (${why})`);
  return v;
}

export async function runRotate(argv: string[], io: RotateIO): Promise<number> {
  const cmd = command(io);
  const stop = parseArgs(cmd, argv, ROTATE_EXIT);
  if (stop !== undefined) return stop;
  const opts = cmd.opts<Options>();
  const secretArg = cmd.args[0];
  const secrets: string[] = [];
  const redact = redactor(() => secrets);
  const out = (s: string) => io.out(redact(s));
  const err = (s: string) => io.err(redact(s));
  const report = createReporter({ out, err, json: !!opts.json, tty: io.tty && !opts.json, now: io.now });
  const store = new JournalStore({ dir: resolve(io.root, opts.journalDir), secrets: () => secrets });
  let unlockSecret: (() => void) | undefined;
  try {
    // Where the Cloudflare token and the Admin API key go: checked before anything runs.
    const cloudflareBase = apiBaseUrl(opts.cloudflareBaseUrl, io.env.CLOUDFLARE_BASE_URL, { flag: "--cloudflare-base-url", env: "CLOUDFLARE_BASE_URL" });
    const anthropicBase = apiBaseUrl(opts.anthropicBaseUrl, io.env.ANTHROPIC_BASE_URL, { flag: "--anthropic-base-url", env: "ANTHROPIC_BASE_URL" });
    // The status reads carry the operator token.
    const statusVia = apiBaseUrl(opts.statusVia, io.env.EDGEFLEET_STATUS_VIA, { flag: "--status-via", env: "EDGEFLEET_STATUS_VIA" });
    if (opts.rollback && !opts.resume) throw new UsageError("--rollback goes with --resume");
    if (opts.persistedByHand && !opts.resume) throw new UsageError("--persisted-by-hand goes with --resume");

    // Which rotation: a new one, or the journal of an interrupted one.
    // One run per secret at a time: the secret's lock is taken before the journals are
    // read (so two starts cannot both see "none open") and held until the run ends.
    let journal: Journal | undefined;
    if (opts.resume) {
      journal = pickJournal(store, opts.resume === true ? undefined : opts.resume, secretArg);
      if (!opts.dryRun) {
        unlockSecret = store.lock(`secret-${journal.secret.toLowerCase()}`);
        journal = store.load(journal.id); // as it is now that nobody else drives it
        // A Worker that binds the secret but joined the fleet after the rotation started
        // would keep the old key through the revoke: refuse, unless rolling back.
        if (!opts.rollback && !FINISHED.includes(journal.phase) && !journal.phase.startsWith("rollback")) {
          const known = new Set(journal.workers.map((w) => w.script));
          const extra = readWorkers(io, { ...opts, stack: journal.stack }, journal.secret).workers.filter((w) => !known.has(w.script));
          if (extra.length > 0) {
            throw new UsageError(
              `${extra.length} Worker(s) bind ${journal.secret} but are not part of rotation ${journal.id} (added since it started): ${extra.map((w) => w.script).join(", ")}. ` +
                "Undo it with --resume --rollback, then start a new rotation that includes them.",
            );
          }
        }
      }
    } else {
      if (!secretArg) throw new UsageError("which secret? e.g. `npm run rotate -- ANTHROPIC_API_KEY` (see --help)");
      if (!PROVIDERS[secretArg]) throw new UsageError(`no provider for secret ${secretArg}: rotate one of ${Object.keys(PROVIDERS).join(", ")}`);
      if (!opts.dryRun) unlockSecret = store.lock(`secret-${secretArg.toLowerCase()}`);
      const open = store.open().filter((j) => j.secret === secretArg);
      if (open.length > 0 && !opts.dryRun) {
        throw new UsageError(`rotation ${open[0]!.id} of ${secretArg} is still open (${open[0]!.phase}${open[0]!.stopped ? `: ${open[0]!.stopped}` : ""}); finish it with --resume or undo it with --resume --rollback`);
      }
    }

    if (opts.dryRun) {
      if (journal) {
        report.resumePlan(journal);
        return ROTATE_EXIT.ok;
      }
      const { workers, source } = readWorkers(io, opts, secretArg!);
      report.plan({ ...planOf({ secret: secretArg!, workers, keepOld: !!opts.keepOld, confirmations: opts.confirmations, concurrency: opts.concurrency }), source, stack: opts.stack, persistCommand: pulumiConfigPersister({ bin: opts.pulumiBin, stack: opts.stack, cwd: io.root }).describe("<config>") });
      return ROTATE_EXIT.ok;
    }

    const keys = await readKeys(io, opts);
    secrets.push(keys.newKey, keys.oldKey);
    const cfToken = need(io, "CLOUDFLARE_API_TOKEN", "the Cloudflare API token that may edit Worker secrets");
    const operatorToken = need(io, "EDGEFLEET_OPERATOR_TOKEN", "the bearer token of the Workers' status endpoints");
    const adminKey = io.env.ANTHROPIC_ADMIN_KEY || undefined;
    secrets.push(cfToken, operatorToken, ...(adminKey ? [adminKey] : []));
    const keepOld = journal ? journal.options.keepOld : !!opts.keepOld;
    if (!keepOld && !adminKey) throw new UsageError("ANTHROPIC_ADMIN_KEY is not set (the Admin API key that finds and disables the old key); or pass --keep-old");

    const stack = journal?.stack ?? opts.stack;
    const deps = (accountId: string) => ({
      secrets: cloudflareSecrets({
        apiToken: cfToken,
        accountId,
        baseURL: cloudflareBase,
        limiter: new RateLimiter(opts.rateLimit),
        onRetry: (r) => report.event({ event: "retry", ...r }),
      }),
      status: statusReader({ operatorToken, via: statusVia }),
      provider: anthropicProvider({ adminKey, baseURL: anthropicBase }),
      persister: pulumiConfigPersister({ bin: opts.pulumiBin, stack, cwd: io.root }),
      store,
      emit: (e: RotationEvent) => report.event(e),
      signal: io.signal,
      timing: { pollIntervalMs: opts.pollInterval * 1000, confirmTimeoutMs: opts.confirmTimeout * 1000, statusConcurrency: opts.statusConcurrency, settleMs: opts.settle * 1000 },
    });

    let outcome: Outcome;
    let id: string;
    let run: () => Promise<Outcome>;
    if (journal) {
      const j = journal;
      id = j.id;
      run = () => resumeRotation(j, keys, deps(j.accountId), { rollback: opts.rollback, persistedByHand: opts.persistedByHand });
    } else {
      const secret = secretArg!;
      const { workers, accountId } = readWorkers(io, opts, secret);
      if (!accountId) throw new UsageError(`no Cloudflare account id: set edgefleet:accountId in Pulumi.${opts.stack}.yaml or CLOUDFLARE_ACCOUNT_ID`);
      id = rotationId(secret, io.now?.() ?? new Date());
      const rid = id;
      run = () => startRotation({ id: rid, secret, stack, accountId, workers, keepOld, confirmations: opts.confirmations, concurrency: opts.concurrency }, keys, deps(accountId));
    }
    const unlock = store.lock(id);
    try {
      outcome = await run();
    } finally {
      unlock();
    }
    report.outcome(outcome, outcome.journal ? store.path(outcome.journal.id) : undefined);
    switch (outcome.result) {
      case "done":
        return ROTATE_EXIT.ok;
      case "rolled-back":
        return ROTATE_EXIT.rolledBack;
      case "stopped":
      case "interrupted":
        return ROTATE_EXIT.resume;
      case "refused":
        return journal ? ROTATE_EXIT.usage : ROTATE_EXIT.failed;
      case "rollback-failed":
        return ROTATE_EXIT.resume;
    }
    return ROTATE_EXIT.failed;
  } catch (e) {
    if (e instanceof UsageError || e instanceof JournalError) {
      report.error(e.message);
      return ROTATE_EXIT.usage;
    }
    report.error(`unexpected error: ${(e as Error).stack ?? String(e)}`);
    return ROTATE_EXIT.failed;
  } finally {
    unlockSecret?.();
    report.close();
  }
}

function pickJournal(store: JournalStore, id: string | undefined, secret: string | undefined): Journal {
  if (id) return store.load(id);
  const open = store.open().filter((j) => !secret || j.secret === secret);
  if (open.length === 0) {
    const all = store.list();
    const last = all.at(-1)?.journal;
    throw new UsageError(`no interrupted rotation to resume in ${store.dir}${last && FINISHED.includes(last.phase) ? ` (the last one, ${last.id}, is ${last.phase})` : ""}`);
  }
  if (open.length > 1) throw new UsageError(`${open.length} open rotations: name one with --resume <id>: ${open.map((j) => j.id).join(", ")}`);
  return open[0]!;
}

export function rotationId(secret: string, at: Date): string {
  return `${at.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z")}-${secret.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
}
