// The rotation engine: preflight -> stage (canaries first, then the rest with bounded
// concurrency) -> confirm (each Worker reports the new fingerprint K times in a row) ->
// persist (Pulumi secret config) -> revoke (the old key, only after a final sweep sees
// the new fingerprint everywhere). A confirmation failure rolls back instead: the old
// key goes back everywhere it was changed and is confirmed; nothing is revoked.
//
// Every step is recorded in the journal before the next one starts, so a run can stop
// anywhere (crash, Ctrl-C, API failure) and `resume` continues from the journal: a step
// recorded as done is never done again, and no step is skipped. A step whose effect may
// or may not have happened (its intent is recorded, its completion is not: the process
// died with the request in flight) is re-issued; every such effect is idempotent (PUT of
// the same secret, config set of the same value, disabling a disabled key).
//
// The engine knows no inventory and no CLI: it takes a list of DesiredWorker and ports
// (Cloudflare secrets, status reader, key provider, persister, journal store).
import type { SecretsApi } from "./cloudflare.ts";
import { CloudflareApiError, VersionNotDeployedError } from "./cloudflare.ts";
import type { KeyProvider } from "./anthropic.ts";
import { ProviderError } from "./anthropic.ts";
import { CrashedError, type Journal, type JournalStore, type JournalWorker, type Phase } from "./journal.ts";
import { PersistError, type Persister } from "./persist.ts";
import { pool } from "./pool.ts";
import type { StatusReader } from "./status.ts";
import { configKeyOf, fingerprint, type DesiredWorker } from "./workers.ts";

export interface RotationEvent {
  event: string;
  [field: string]: unknown;
}

export interface Timing {
  /** Pause between two status polls of one Worker (ms). */
  pollIntervalMs: number;
  /** How long confirmation (and roll-back confirmation) may take (ms). */
  confirmTimeoutMs: number;
  /** Status reads in flight at once. */
  statusConcurrency: number;
  /**
   * Wait after the last confirmation before the final sweep and revoke (ms): one
   * vantage point confirmed the new version; this gives the rest of Cloudflare's edge
   * time to serve it too before the old key dies.
   */
  settleMs: number;
}

export const DEFAULT_TIMING: Timing = { pollIntervalMs: 2000, confirmTimeoutMs: 300_000, statusConcurrency: 32, settleMs: 30_000 };

export interface EngineDeps {
  secrets: SecretsApi;
  status: StatusReader;
  provider: KeyProvider;
  persister: Persister;
  store: JournalStore;
  emit: (e: RotationEvent) => void;
  /** Aborted on Ctrl-C: stop launching steps, finish and record those in flight. */
  signal?: AbortSignal;
  timing?: Partial<Timing>;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

export interface Keys {
  newKey: string;
  oldKey: string;
}

export interface StartRequest {
  id: string;
  secret: string;
  stack: string;
  accountId: string;
  /** The Workers that bind `secret`, canaries first (workersBindingSecret). */
  workers: readonly DesiredWorker[];
  keepOld: boolean;
  confirmations: number;
  concurrency: number;
}

export type Result = "done" | "rolled-back" | "rollback-failed" | "stopped" | "interrupted" | "refused";

export interface Outcome {
  result: Result;
  /** Why, in one or more sentences (for humans). */
  message: string;
  journal?: Journal;
  /** Workers that did not confirm (rolled-back) or did not restore (rollback-failed) or disagree (stopped). */
  workers?: string[];
  problems?: string[];
}

export class InterruptedError extends Error {
  constructor() {
    super("interrupted");
    this.name = "InterruptedError";
  }
}

/** The plan of a rotation, as the dry run prints it. */
export function planOf(req: Pick<StartRequest, "secret" | "workers" | "keepOld" | "confirmations" | "concurrency">) {
  const canaries = req.workers.filter((w) => w.canary);
  const rest = req.workers.filter((w) => !w.canary);
  const configs = [...new Set(req.workers.map((w) => configKeyOf(w, req.secret)))];
  return {
    secret: req.secret,
    workers: req.workers.length,
    order: [...canaries, ...rest].map((w) => ({ script: w.script, canary: w.canary, statusUrl: w.statusUrl })),
    missingStatus: req.workers.filter((w) => !w.statusUrl).map((w) => w.script),
    persist: configs,
    revoke: !req.keepOld,
    confirmations: req.confirmations,
    concurrency: req.concurrency,
  };
}

/** Checks before anything changes. Returns the problems; empty means go. */
async function preflight(req: StartRequest, keys: Keys, deps: EngineDeps, t: Timing): Promise<{ problems: string[]; oldKey: Journal["oldKey"] }> {
  const problems: string[] = [];
  const fpNew = fingerprint(keys.newKey);
  const fpOld = fingerprint(keys.oldKey);
  if (keys.newKey === keys.oldKey || fpNew === fpOld) problems.push("the new key is the old key");
  if (req.workers.length === 0) problems.push(`no Worker binds ${req.secret} in the desired state`);
  for (const w of req.workers) if (!w.statusUrl) problems.push(`Worker ${w.script} has no status endpoint (statusUrl): its new key could not be confirmed`);
  if (problems.length > 0) return { problems, oldKey: null };

  try {
    await deps.provider.verify(keys.newKey);
    deps.emit({ event: "preflight.key-works", fingerprint: fpNew });
  } catch (e) {
    if (!(e instanceof ProviderError)) throw e;
    problems.push(e.message);
  }
  let oldKey: Journal["oldKey"] = null;
  if (!req.keepOld) {
    try {
      const k = await deps.provider.findKey(keys.oldKey, keys.newKey);
      oldKey = { id: k.id };
      deps.emit({ event: "preflight.old-key-found", id: k.id, name: k.name, fingerprint: fpOld });
    } catch (e) {
      if (!(e instanceof ProviderError)) throw e;
      problems.push(e.message);
    }
  }
  // Every Worker must run the old key now (or already the new one): otherwise the old
  // key we were given is not the one the fleet uses, and a roll back would break it.
  const wrong: string[] = [];
  await pool(req.workers, t.statusConcurrency, async (w) => {
    try {
      const s = await readStatus(deps, t, w.statusUrl!, req.secret);
      if (s.fingerprint !== fpOld && s.fingerprint !== fpNew) wrong.push(`Worker ${w.script} reports ${s.fingerprint ?? "no key"} for ${req.secret}, neither the old key (${fpOld}) nor the new one (${fpNew}): is the old key right?`);
    } catch (e) {
      wrong.push(`Worker ${w.script}: ${(e as Error).message}`);
    }
  });
  problems.push(...wrong.sort());
  if (wrong.length === 0) deps.emit({ event: "preflight.fleet-on-old-key", workers: req.workers.length, fingerprint: fpOld });
  return { problems, oldKey };
}

export async function startRotation(req: StartRequest, keys: Keys, deps: EngineDeps): Promise<Outcome> {
  const t = { ...DEFAULT_TIMING, ...deps.timing };
  deps.emit({ event: "plan", rotation: req.id, ...planOf(req) });
  const { problems, oldKey } = await preflight(req, keys, deps, t);
  if (problems.length > 0) {
    deps.emit({ event: "preflight.refused", problems });
    return { result: "refused", message: "preflight refused the rotation; nothing was changed", problems };
  }
  const now = new Date(deps.now?.() ?? Date.now()).toISOString();
  const j: Journal = {
    version: 1,
    id: req.id,
    secret: req.secret,
    provider: "anthropic",
    stack: req.stack,
    accountId: req.accountId,
    createdAt: now,
    updatedAt: now,
    fingerprints: { new: fingerprint(keys.newKey), old: fingerprint(keys.oldKey) },
    options: { keepOld: req.keepOld, confirmations: req.confirmations, concurrency: req.concurrency },
    oldKey,
    phase: req.workers.some((w) => w.canary) ? "stage-canary" : "stage",
    workers: req.workers.map((w) => ({ script: w.script, statusUrl: w.statusUrl!, canary: w.canary, config: configKeyOf(w, req.secret), state: "pending" })),
    persist: [...new Set(req.workers.map((w) => configKeyOf(w, req.secret)))].map((config) => ({ config, state: "pending" as const })),
    revoke: req.keepOld ? "skipped" : "pending",
    rollback: null,
    stopped: null,
    steps: [],
  };
  deps.store.commit(j, "preflight");
  deps.emit({ event: "preflight.ok", rotation: j.id, journal: deps.store.path(j.id) });
  return drive(j, keys, deps, t);
}

export interface ResumeOptions {
  /** Roll back instead of continuing (only before the new key is persisted). */
  rollback?: boolean;
  /** The operator ran `pulumi config set --secret` by hand: mark persist as done. */
  persistedByHand?: boolean;
}

/** Problems that stop a resume before it does anything (wrong keys, finished rotation). */
export function checkResume(j: Journal, keys: Keys, o: ResumeOptions = {}): string[] {
  const p: string[] = [];
  if (fingerprint(keys.newKey) !== j.fingerprints.new) p.push(`the new key given has fingerprint ${fingerprint(keys.newKey)}, the journal's is ${j.fingerprints.new}`);
  if (fingerprint(keys.oldKey) !== j.fingerprints.old) p.push(`the old key given has fingerprint ${fingerprint(keys.oldKey)}, the journal's is ${j.fingerprints.old}`);
  if (j.phase === "done" || j.phase === "rolled-back") p.push(`rotation ${j.id} is finished (${j.phase}); there is nothing to resume`);
  if (o.rollback && persistStarted(j)) p.push(`rotation ${j.id} has already persisted the new key; it can only be completed, not rolled back`);
  return p;
}

function persistStarted(j: Journal): boolean {
  return j.persist.some((p) => p.state !== "pending");
}

export async function resumeRotation(j: Journal, keys: Keys, deps: EngineDeps, o: ResumeOptions = {}): Promise<Outcome> {
  const t = { ...DEFAULT_TIMING, ...deps.timing };
  const problems = checkResume(j, keys, o);
  if (problems.length > 0) return { result: "refused", message: "cannot resume", problems, journal: j };
  deps.emit({ event: "resume", rotation: j.id, phase: j.phase, stopped: j.stopped, steps: j.steps.length });
  j.stopped = null;
  if (j.phase === "rollback-failed") {
    // Retry the roll back: the old key is written again to every Worker that did not
    // report it (whatever put the new key back, or kept the old version from serving,
    // may be fixed now), then confirmed again. Its steps carry the attempt number.
    j.rollback = { reason: j.rollback?.reason ?? "roll back", failed: j.rollback?.failed ?? [], attempt: (j.rollback?.attempt ?? 1) + 1 };
    for (const w of j.workers) if (w.state === "restored") w.state = "restoring";
    j.phase = "rollback";
    deps.store.commit(j, attemptStep(j, "enter:rollback"));
    deps.emit({ event: "rollback.retry", attempt: j.rollback.attempt });
  } else if (o.rollback && j.phase !== "rollback" && j.phase !== "rollback-confirm") {
    j.rollback = { reason: "requested by the operator (--rollback)", failed: [] };
    j.phase = "rollback";
    deps.store.commit(j, "enter:rollback");
  }
  if (o.persistedByHand && j.phase === "persist") {
    for (const p of j.persist) {
      if (p.state === "done" || p.state === "by-hand") continue;
      p.state = "by-hand";
      deps.store.commit(j, `persist:${p.config}`);
      deps.emit({ event: "persist.by-hand", config: p.config });
    }
  }
  return drive(j, keys, deps, t);
}

/** Runs phases until the rotation finishes or stops. */
async function drive(j: Journal, keys: Keys, deps: EngineDeps, t: Timing): Promise<Outcome> {
  const stop = () => deps.signal?.aborted === true;
  try {
    for (;;) {
      if (stop()) throw new InterruptedError();
      switch (j.phase) {
        case "stage-canary":
          await stage(j, j.workers.filter((w) => w.canary), 1, keys.newKey, deps);
          next(j, deps, "confirm-canary");
          break;
        case "confirm-canary":
        case "confirm": {
          const set = j.workers.filter((w) => w.canary === (j.phase === "confirm-canary"));
          const failed = await confirm(j, set, j.fingerprints.new, "staged", "confirmed", "confirm", deps, t);
          if (failed.length > 0) {
            j.rollback = { reason: `${failed.length} Worker(s) did not report the new key ${j.options.confirmations} times in a row within ${seconds(t.confirmTimeoutMs)}`, failed };
            deps.emit({ event: "confirm.failed", workers: failed, lastSeen: Object.fromEntries(j.workers.filter((w) => failed.includes(w.script)).map((w) => [w.script, w.lastSeen ?? null])) });
            next(j, deps, "rollback");
          } else next(j, deps, j.phase === "confirm-canary" ? "stage" : "persist");
          break;
        }
        case "stage":
          await stage(j, j.workers.filter((w) => !w.canary), j.options.concurrency, keys.newKey, deps);
          next(j, deps, "confirm");
          break;
        case "persist":
          for (const p of j.persist) {
            if (p.state === "done" || p.state === "by-hand") continue;
            if (stop()) throw new InterruptedError();
            if (p.state === "pending") {
              p.state = "running";
              deps.store.commit(j);
            }
            await deps.persister.persist(p.config, keys.newKey);
            p.state = "done";
            deps.store.commit(j, `persist:${p.config}`);
            deps.emit({ event: "persist.done", config: p.config, command: deps.persister.describe(p.config) });
          }
          next(j, deps, "revoke");
          break;
        case "revoke": {
          if (j.revoke === "skipped") {
            deps.emit({ event: "revoke.skipped", reason: "--keep-old" });
            next(j, deps, "done");
            break;
          }
          if (j.revoke === "done") {
            // Recorded before the crash that kept the phase from moving on.
            next(j, deps, "done");
            break;
          }
          if (t.settleMs > 0) {
            deps.emit({ event: "revoke.settle", ms: t.settleMs });
            await abortable((deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms))))(t.settleMs), deps.signal);
            if (stop()) throw new InterruptedError();
          }
          // The last word before the old key dies: every Worker, read once more, runs the new key.
          const disagree = await sweep(j, j.fingerprints.new, deps, t);
          if (disagree.length > 0) {
            const msg = `${disagree.length} Worker(s) no longer report the new key (${disagree.slice(0, 10).join(", ")}${disagree.length > 10 ? ", ..." : ""}): the old key was NOT revoked. Find out why (a concurrent deploy or pulumi up?), then resume.`;
            return stopped(j, deps, msg, disagree);
          }
          deps.emit({ event: "revoke.sweep-ok", workers: j.workers.length });
          if (j.revoke === "sent" && (await deps.provider.status(j.oldKey!.id)) === "inactive") {
            // The request went out before the crash and took effect: record it, do not resend.
          } else {
            if (j.revoke === "pending") {
              j.revoke = "sent";
              deps.store.commit(j);
            }
            await deps.provider.revoke(j.oldKey!.id);
          }
          j.revoke = "done";
          deps.store.commit(j, "revoke");
          deps.emit({ event: "revoke.done", id: j.oldKey!.id, fingerprint: j.fingerprints.old });
          next(j, deps, "done");
          break;
        }
        case "rollback": {
          const touched = j.workers.filter((w) => w.state === "staging" || w.state === "staged" || w.state === "confirmed" || w.state === "restoring");
          deps.emit({ event: "rollback.start", reason: j.rollback?.reason, workers: touched.map((w) => w.script) });
          await restore(j, touched, keys.oldKey, deps);
          next(j, deps, "rollback-confirm");
          break;
        }
        case "rollback-confirm": {
          const set = j.workers.filter((w) => w.state === "restored" || w.state === "restore-confirmed");
          const failed = await confirm(j, set, j.fingerprints.old, "restored", "restore-confirmed", "restore-confirm", deps, t);
          if (failed.length > 0) {
            next(j, deps, "rollback-failed");
            return {
              result: "rollback-failed",
              message: `roll back incomplete: ${failed.length} Worker(s) do not report the old key: ${failed.join(", ")}. Both keys are still valid; nothing was revoked. Find out why (a deploy in progress? a Worker not serving its newest version?), then --resume retries the roll back.`,
              workers: failed,
              journal: j,
            };
          }
          next(j, deps, "rolled-back");
          const failedNew = j.rollback?.failed ?? [];
          return {
            result: "rolled-back",
            message: `rolled back: ${j.rollback?.reason ?? ""}. The old key is live again on every Worker that had been changed; nothing was revoked.${failedNew.length ? ` Workers that failed to confirm: ${failedNew.join(", ")}.` : ""}`,
            workers: failedNew,
            journal: j,
          };
        }
        case "done":
          deps.emit({ event: "done", rotation: j.id, steps: j.steps.length });
          return { result: "done", message: `rotated ${j.secret} on ${j.workers.length} Worker(s)${j.revoke === "done" ? "; the old key is disabled" : "; the old key was kept (--keep-old)"}`, journal: j };
        case "rolled-back":
          return { result: j.phase, message: `rotation ${j.id} is finished (${j.phase})`, journal: j };
        case "rollback-failed":
          // Only reached through a crash right after the phase was recorded: resume retries.
          return { result: "rollback-failed", message: `rotation ${j.id}: the roll back is incomplete; --resume retries it`, journal: j };
      }
    }
  } catch (e) {
    if (e instanceof CrashedError || deps.store.crashed) throw e;
    if (e instanceof InterruptedError) return stopped(j, deps, "interrupted", [], "interrupted");
    if (e instanceof VersionNotDeployedError || e instanceof CloudflareApiError || e instanceof PersistError || e instanceof ProviderError) return stopped(j, deps, e.message);
    throw e;
  }
}

function seconds(ms: number): string {
  return ms >= 10_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 100) / 10} s`;
}

/** A roll back step's name; a retried roll back's carry its attempt ("restore#2:x"), so no step name repeats. */
function attemptStep(j: Journal, step: string): string {
  const n = j.rollback?.attempt ?? 1;
  if (n === 1) return step;
  const i = step.indexOf(":");
  return `${step.slice(0, i)}#${n}${step.slice(i)}`;
}

function next(j: Journal, deps: EngineDeps, phase: Phase): void {
  j.phase = phase;
  deps.store.commit(j, phase.startsWith("roll") ? attemptStep(j, `enter:${phase}`) : `enter:${phase}`);
  deps.emit({ event: "phase", phase });
}

function stopped(j: Journal, deps: EngineDeps, message: string, workers: string[] = [], result: Result = "stopped"): Outcome {
  j.stopped = message;
  deps.store.commit(j);
  deps.emit({ event: result === "interrupted" ? "interrupted" : "stopped", phase: j.phase, message, workers });
  return { result, message, workers, journal: j };
}

async function stage(j: Journal, set: JournalWorker[], concurrency: number, value: string, deps: EngineDeps): Promise<void> {
  const todo = set.filter((w) => w.state === "pending" || w.state === "staging");
  deps.emit({ event: "stage.start", workers: todo.length, of: set.length, canary: set.some((w) => w.canary) });
  await pool(
    todo,
    concurrency,
    async (w) => {
      if (w.state === "pending") {
        w.state = "staging";
        deps.store.commit(j, undefined);
      }
      try {
        await deps.secrets.put(w.script, j.secret, value);
      } catch (e) {
        // Refused for want of a deployed latest version: certainly not written, so a roll
        // back need not touch this Worker; resume writes it again.
        if (e instanceof VersionNotDeployedError) {
          w.state = "pending";
          deps.store.commit(j, undefined);
        }
        throw e;
      }
      // The version this write deployed: confirmation counts only reads from it.
      w.versionId = await deps.secrets.deployedVersion(w.script, j.secret);
      w.state = "staged";
      deps.store.commit(j, `stage:${w.script}`);
      deps.emit({ event: "stage.done", worker: w.script, canary: w.canary });
    },
    () => deps.signal?.aborted === true,
  );
  if (deps.signal?.aborted) throw new InterruptedError();
}

async function restore(j: Journal, set: JournalWorker[], value: string, deps: EngineDeps): Promise<void> {
  await pool(
    set.filter((w) => w.state !== "restored"),
    j.options.concurrency,
    async (w) => {
      if (w.state !== "restoring") {
        w.state = "restoring";
        deps.store.commit(j, undefined);
      }
      await deps.secrets.put(w.script, j.secret, value);
      w.versionId = await deps.secrets.deployedVersion(w.script, j.secret);
      w.state = "restored";
      deps.store.commit(j, attemptStep(j, `restore:${w.script}`));
      deps.emit({ event: "rollback.restored", worker: w.script });
    },
    () => deps.signal?.aborted === true,
  );
  if (deps.signal?.aborted) throw new InterruptedError();
}

/**
 * Polls the Workers in `set` that are in state `from` until each reports `fp` from the
 * version our write deployed (`versionId`, read from the deployments API right after the
 * write) `confirmations` times in a row (a Worker that flips back, or answers from another
 * version, resets its count), recording each as `to`. Returns the Workers that had not
 * confirmed when the time ran out.
 *
 * What it proves: the Cloudflare location that serves the operator runs that version and
 * it holds the key. Not proven: every other location, nor isolates of the old version
 * still finishing long requests (streams) with the old key: the settle wait before revoke
 * covers those (docs/rotation.md).
 */
async function confirm(j: Journal, set: JournalWorker[], fp: string, from: JournalWorker["state"], to: JournalWorker["state"], label: string, deps: EngineDeps, t: Timing): Promise<string[]> {
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const deadline = now() + t.confirmTimeoutMs;
  const streak = new Map<string, number>();
  let pending = set.filter((w) => w.state === from);
  const total = set.length;
  // A journal written before version ids were recorded: read the serving version now.
  for (const w of pending) if (!w.versionId) w.versionId = await deps.secrets.deployedVersion(w.script, j.secret);
  deps.emit({ event: `${label}.start`, workers: pending.length, of: total, fingerprint: fp, confirmations: j.options.confirmations });
  deps.emit({ event: `${label}.progress`, confirmed: total - pending.length, total });
  while (pending.length > 0) {
    if (deps.signal?.aborted) throw new InterruptedError();
    const round = now();
    await pool(
      pending,
      t.statusConcurrency,
      async (w) => {
        let ok = false;
        try {
          const s = await deps.status.read(w.statusUrl, j.secret);
          ok = s.fingerprint === fp && s.versionId === w.versionId;
          w.lastSeen = seenText(s);
        } catch (e) {
          w.lastSeen = `error: ${(e as Error).message}`;
        }
        const n = ok ? (streak.get(w.script) ?? 0) + 1 : 0;
        streak.set(w.script, n);
        if (n >= j.options.confirmations) {
          w.state = to;
          deps.store.commit(j, label === "restore-confirm" ? attemptStep(j, `${label}:${w.script}`) : `${label}:${w.script}`);
          deps.emit({ event: `${label}.done`, worker: w.script });
        }
      },
      () => deps.signal?.aborted === true,
    );
    pending = pending.filter((w) => w.state === from);
    deps.emit({ event: `${label}.progress`, confirmed: total - pending.length, total });
    if (pending.length === 0) break;
    if (now() >= deadline) return pending.map((w) => w.script);
    const wait = Math.min(t.pollIntervalMs - (now() - round), deadline - now());
    if (wait > 0) await abortable(sleep(wait), deps.signal);
  }
  return [];
}

/** Resolves when `p` does or when `signal` aborts, whichever comes first. */
function abortable(p: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return p;
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      signal.removeEventListener("abort", done);
      resolve();
    };
    signal.addEventListener("abort", done);
    void p.then(done);
  });
}

/** A status read that tries three times (one poll interval apart) before it reports an error. */
async function readStatus(deps: EngineDeps, t: Timing, url: string, secret: string) {
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (let attempt = 1; ; attempt++) {
    try {
      return await deps.status.read(url, secret);
    } catch (e) {
      if (attempt >= 3) throw e;
      await sleep(t.pollIntervalMs);
    }
  }
}

/** What a status read showed, for the journal and the failure report. */
function seenText(s: { fingerprint: string | null; versionId: string | null }): string {
  return `${s.fingerprint ?? "no key"} (version ${s.versionId ?? "unknown"})`;
}

/**
 * The last look before revoke, per Worker: the deployments API must show one version at
 * 100% (a gradual deployment started since confirmation could send some traffic to a
 * version with the old key, which one status read might miss), and the status endpoint
 * must answer from that version with `fp`. A version other than the confirmed one (a
 * deploy since, inheriting the new key) is accepted on that evidence and recorded.
 * Returns the Workers that fail.
 */
async function sweep(j: Journal, fp: string, deps: EngineDeps, t: Timing): Promise<string[]> {
  const bad: string[] = [];
  await pool(j.workers, t.statusConcurrency, async (w) => {
    try {
      const version = await deps.secrets.deployedVersion(w.script, j.secret);
      const s = await readStatus(deps, t, w.statusUrl, j.secret);
      w.lastSeen = seenText(s);
      if (s.fingerprint !== fp || s.versionId !== version) bad.push(w.script);
      else w.versionId = version;
    } catch (e) {
      if (e instanceof VersionNotDeployedError) w.lastSeen = "a gradual deployment since confirmation";
      else if (e instanceof CloudflareApiError) throw e;
      else w.lastSeen = `error: ${(e as Error).message}`;
      bad.push(w.script);
    }
  });
  return bad.sort();
}
