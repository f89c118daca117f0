// The rotation journal: one JSON file per rotation under .edgefleet/rotations/, rewritten
// after every step so that it survives a crash AND a power loss (temp file, fsync it,
// rename it over the journal, fsync the directory so the rename itself is on disk), and a
// rotation interrupted at any point (crash, Ctrl-C, lost network, power) resumes where it
// stopped. It records fingerprints, never keys: every write is checked against the keys
// in memory. Its locks keep two runs apart, and a stale one is taken over atomically.
import { createHash, randomUUID } from "node:crypto";
import * as nodeFs from "node:fs";
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { z } from "zod";

export const PHASES = ["stage-canary", "confirm-canary", "stage", "confirm", "persist", "verify", "revoke", "done", "rollback", "rollback-confirm", "rolled-back", "rollback-failed"] as const;
export type Phase = (typeof PHASES)[number];
/** Phases nothing follows. A failed roll back is not one: `--resume` retries it. */
export const FINISHED: readonly Phase[] = ["done", "rolled-back"];

export const WORKER_STATES = ["pending", "staging", "staged", "confirmed", "restoring", "restored", "restore-confirmed"] as const;
export type WorkerState = (typeof WORKER_STATES)[number];

const JournalWorker = z.object({
  script: z.string(),
  statusUrl: z.string(),
  canary: z.boolean(),
  config: z.string(),
  state: z.enum(WORKER_STATES),
  /** What its status endpoint last reported: fingerprint and version (for the failure report). */
  lastSeen: z.string().nullable().optional(),
  /**
   * The version our last secret write deployed, read from the deployments API right
   * after it; confirmation counts only status reads from this version.
   */
  versionId: z.string().nullable().optional(),
});
export type JournalWorker = z.infer<typeof JournalWorker>;

const Fingerprint = z.string().regex(/^sha256:[0-9a-f]{12}$/);

export const JournalSchema = z.object({
  version: z.literal(1),
  id: z.string(),
  secret: z.string(),
  provider: z.literal("anthropic"),
  stack: z.string(),
  accountId: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
  fingerprints: z.object({ new: Fingerprint, old: Fingerprint }),
  options: z.object({ keepOld: z.boolean(), confirmations: z.number().int().min(1), concurrency: z.number().int().min(1) }),
  /**
   * The old key at the provider (found in preflight; null with --keep-old): its id only.
   * Never the Admin API's partial_key_hint (a journal written before it was dropped still
   * loads: zod strips the field, and the next write leaves it out).
   */
  oldKey: z.object({ id: z.string() }).nullable(),
  phase: z.enum(PHASES),
  workers: z.array(JournalWorker),
  persist: z.array(z.object({ config: z.string(), state: z.enum(["pending", "running", "done", "by-hand"]) })),
  revoke: z.enum(["pending", "sent", "done", "skipped"]),
  /** Why the rotation rolls back, the Workers that failed to confirm, and which attempt this is (a failed roll back is retried by --resume). */
  rollback: z.object({ reason: z.string(), failed: z.array(z.string()), attempt: z.number().int().min(1).optional() }).nullable(),
  /** Why the last run stopped before finishing (cleared when a run resumes). */
  stopped: z.string().nullable(),
  /** Every completed step, in order: the proof that none was repeated or skipped. */
  steps: z.array(z.object({ n: z.number().int(), step: z.string(), at: z.string() })),
});
export type Journal = z.infer<typeof JournalSchema>;

export class JournalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JournalError";
  }
}

/** Thrown by every write once the test hook simulated a crash: a dead process writes nothing. */
export class CrashedError extends Error {
  constructor() {
    super("the process crashed (simulated)");
    this.name = "CrashedError";
  }
}

export interface JournalStoreOptions {
  dir: string;
  /** Values that must never be written (the keys). */
  secrets: () => readonly string[];
  /** The file operations of a journal write (tests inject a recorder to check their order). */
  fs?: JournalFs;
  /** Test hooks inside a stale lock's takeover, to interleave two contenders exactly there. */
  lockHooks?: LockHooks;
  /**
   * Test hook, called after the n-th write of this store (a completed step, or the
   * intent recorded before an effect, step "(intent)"); throwing there simulates a crash.
   */
  afterStep?: (n: number, step: string) => void;
  now?: () => Date;
}

/** The calls a durable journal write makes, in the order it makes them. */
export type JournalFs = Pick<typeof nodeFs, "openSync" | "writeSync" | "fsyncSync" | "closeSync" | "renameSync">;

export interface LockHooks {
  /** After reading a lock held by a dead process, before taking it over. */
  afterStaleRead?: (file: string) => void;
  /** After taking the stale lock's takeover marker, before re-reading and replacing the lock. */
  afterMarker?: (file: string) => void;
}

/** fsync a directory, so that a rename or a new entry in it survives a power loss. */
function fsyncDir(fs: JournalFs, dir: string): void {
  const fd = fs.openSync(dir, "r");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export class JournalStore {
  readonly dir: string;
  private readonly o: JournalStoreOptions;
  private dead = false;
  /** Journal writes by this store. */
  writes = 0;

  constructor(o: JournalStoreOptions) {
    this.o = o;
    this.dir = o.dir;
  }

  path(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  /**
   * Records `step` as done (when given) and writes the journal so that it survives a
   * power loss: write a temp file and fsync it (its bytes are on disk), rename it over the
   * journal (a reader sees the old or the new journal, never half of one), then fsync the
   * directory (the rename itself is on disk; without it a power loss can bring back the
   * old journal, and the rotation would redo a step it had recorded). Measured cost:
   * ~17 ms a write of a 300-Worker journal on an ext4 VM disk, ~2 ms without the fsyncs
   * (docs/BENCHMARKS.md, key rotation).
   */
  commit(j: Journal, step?: string): void {
    if (this.dead) throw new CrashedError();
    const fs = this.o.fs ?? nodeFs;
    const at = (this.o.now?.() ?? new Date()).toISOString();
    j.updatedAt = at;
    if (step !== undefined) j.steps.push({ n: j.steps.length + 1, step, at });
    // Compact: a 300-Worker journal is rewritten ~1,000 times in a rotation.
    const text = `${JSON.stringify(j)}\n`;
    for (const s of this.o.secrets()) {
      if (s.length >= 8 && text.includes(s)) throw new JournalError("refusing to write a key into the journal (bug)");
    }
    this.ensureDir();
    const file = this.path(j.id);
    const tmp = `${file}.${process.pid}.tmp`;
    const fd = fs.openSync(tmp, "w", 0o600);
    try {
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
    fsyncDir(fs, this.dir);
    this.writes++;
    if (this.o.afterStep) {
      try {
        this.o.afterStep(this.writes, step ?? "(intent)");
      } catch (e) {
        this.dead = true;
        throw e;
      }
    }
  }

  /** Creates the journal directory; each new level is made durable in its parent. */
  private ensureDir(): void {
    if (existsSync(this.dir)) return;
    const first = mkdirSync(this.dir, { recursive: true });
    if (first === undefined) return;
    const fs = this.o.fs ?? nodeFs;
    for (let d = this.dir; ; d = dirname(d)) {
      fsyncDir(fs, dirname(d));
      if (d === first || dirname(d) === d) break;
    }
  }

  get crashed(): boolean {
    return this.dead;
  }

  load(id: string): Journal {
    const file = this.path(id);
    if (!existsSync(file)) throw new JournalError(`no rotation journal ${file}`);
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file, "utf8"));
    } catch (e) {
      throw new JournalError(`${file}: not JSON (${(e as Error).message})`);
    }
    const r = JournalSchema.safeParse(raw);
    if (!r.success) {
      const first = r.error.issues.slice(0, 5).map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
      throw new JournalError(`${file}: not a rotation journal:\n  ${first.join("\n  ")}`);
    }
    return r.data;
  }

  /** Every journal in the directory (unreadable ones reported as errors). */
  list(): { id: string; journal?: Journal; error?: string }[] {
    if (!existsSync(this.dir)) return [];
    return readdirSync(this.dir)
      .filter((f) => f.endsWith(".json"))
      .sort()
      .map((f) => {
        const id = f.slice(0, -5);
        try {
          return { id, journal: this.load(id) };
        } catch (e) {
          return { id, error: (e as Error).message };
        }
      });
  }

  open(): Journal[] {
    return this.list().flatMap((x) => (x.journal && !FINISHED.includes(x.journal.phase) ? [x.journal] : []));
  }

  /** An exclusive lock so two runs never drive one rotation; a stale one (dead pid) is taken over atomically. */
  lock(id: string): () => void {
    this.ensureDir();
    return acquireLock(join(this.dir, `${id}.lock`), this.o.lockHooks);
  }
}

interface LockHolder {
  pid: number;
  nonce: string;
  /** Processes the holder started that act for it and can outlive it (dev:proxy's
   *  workerd): the lock is held while the holder or any of them lives. */
  also?: number[];
}

/** The nonces of the locks this process holds: a lock naming this process's pid with
 *  another nonce was left by an earlier process that had the same pid (a container's
 *  restart), and is stale. */
const heldHere = new Set<string>();

function parseLock(text: string): LockHolder | undefined {
  if (/^\d+$/.test(text.trim())) return { pid: Number(text.trim()), nonce: `legacy-${text.trim()}` }; // before nonces
  try {
    const v = JSON.parse(text) as Partial<LockHolder>;
    if (Number.isInteger(v.pid) && typeof v.nonce === "string" && /^[\w-]+$/.test(v.nonce)) {
      const also = Array.isArray(v.also) ? v.also.filter((p): p is number => Number.isInteger(p) && p > 0).slice(0, 16) : [];
      return { pid: v.pid!, nonce: v.nonce, ...(also.length > 0 ? { also } : {}) };
    }
  } catch {
    // not ours: handled as stale below
  }
  return undefined;
}

/** The live process that holds `h`, if any: its pid, or one of its `also`. */
function liveHolder(h: LockHolder): number | undefined {
  if (h.pid > 0 && alive(h.pid) && !(h.pid === process.pid && !heldHere.has(h.nonce))) return h.pid;
  return h.also?.find((p) => p !== process.pid && alive(p));
}

/** A lock's release; `also` records processes that act for the holder (LockHolder.also). */
export type LockRelease = (() => void) & { also(pids: number[]): void };

function readIfExists(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/**
 * Takes the lock `file`; returns its release. The lock holds `{pid, nonce}` and comes
 * into existence whole (written to a temp file, then hard-linked to its name: link fails
 * if the name exists, so exactly one creator wins).
 *
 * A lock whose pid is dead is taken over without a window for a second winner: only the
 * process holding that stale lock's own takeover marker (`<file>.takeover-<nonce>`, itself
 * such a lock) may replace it, and it re-reads the lock under the marker and replaces it
 * (rename, atomic) only if it is still the same stale one. Two contenders that both saw
 * the dead pid therefore cannot both win: the loser finds the marker held by a live
 * process, or finds the lock changed and then held by a live one. (The old code removed
 * the stale file and created a new one: a second contender could remove the first one's
 * fresh lock and create its own, and both ran.) The marker is released once the lock is
 * replaced: a late contender that takes it re-reads the lock and sees it changed.
 * `what` names what the lock guards in its errors ("rotation <id>" by default).
 */
export function acquireLock(file: string, hooks?: LockHooks, depth = 0, what: string = lockName(file)): LockRelease {
  if (depth > 3) throw new JournalError(`could not lock ${file}: too many takeovers died midway; remove ${file}.takeover-* by hand once no rotation runs`);
  const me: LockHolder = { pid: process.pid, nonce: randomUUID() };
  const tmp = `${file}.${me.nonce}.tmp`;
  const release = Object.assign(
    () => {
      heldHere.delete(me.nonce);
      const cur = readIfExists(file);
      if (cur !== undefined && parseLock(cur)?.nonce === me.nonce) rmSync(file, { force: true });
    },
    {
      also(pids: number[]): void {
        // Rewritten whole (temp file, rename) while it is still this holder's.
        const cur = readIfExists(file);
        if (cur === undefined || parseLock(cur)?.nonce !== me.nonce) return;
        const next = `${file}.${me.nonce}.also.tmp`;
        writeFileSync(next, JSON.stringify({ ...me, also: pids }), { mode: 0o600 });
        nodeFs.renameSync(next, file);
      },
    },
  );
  try {
    writeFileSync(tmp, JSON.stringify(me), { mode: 0o600 });
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        linkSync(tmp, file);
        heldHere.add(me.nonce);
        return release;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      const seen = readIfExists(file);
      if (seen === undefined) continue; // released meanwhile: try again
      const holder = parseLock(seen);
      const live = holder ? liveHolder(holder) : undefined;
      if (live !== undefined) throw new JournalError(`${what} is being run by process ${live} (${file})`);
      hooks?.afterStaleRead?.(file);
      const stale = holder?.nonce ?? createHash("sha256").update(seen).digest("hex").slice(0, 16);
      let releaseMarker: () => void;
      try {
        releaseMarker = acquireLock(`${file}.takeover-${stale}`, hooks, depth + 1);
      } catch (e) {
        if (e instanceof JournalError && / is being run by process (\d+)/.test(e.message)) {
          throw new JournalError(`${what} is being taken over by process ${/ is being run by process (\d+)/.exec(e.message)![1]} (${file})`);
        }
        throw e;
      }
      try {
        hooks?.afterMarker?.(file);
        if (readIfExists(file) !== seen) continue; // someone else changed it: look again
        nodeFs.renameSync(tmp, file);
        fsyncDir(nodeFs, dirname(file));
        heldHere.add(me.nonce);
        return release;
      } finally {
        releaseMarker();
      }
    }
    throw new JournalError(`could not lock ${file}: it keeps changing`);
  } finally {
    rmSync(tmp, { force: true });
  }
}

function lockName(file: string): string {
  return `rotation ${(file.split("/").at(-1) ?? file).replace(/\.lock$/, "")}`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
