// The rotation journal: one JSON file per rotation under .edgefleet/rotations/, rewritten
// atomically (temp file, fsync, rename) after every step, so a rotation interrupted at
// any point (crash, Ctrl-C, lost network) resumes where it stopped. It records
// fingerprints, never keys: every write is checked against the keys in memory.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";

export const PHASES = ["stage-canary", "confirm-canary", "stage", "confirm", "persist", "verify", "revoke", "done", "rollback", "rollback-confirm", "rolled-back", "rollback-failed"] as const;
export type Phase = (typeof PHASES)[number];
export const FINISHED: readonly Phase[] = ["done", "rolled-back", "rollback-failed"];

export const WORKER_STATES = ["pending", "staging", "staged", "confirmed", "restoring", "restored", "restore-confirmed"] as const;
export type WorkerState = (typeof WORKER_STATES)[number];

const JournalWorker = z.object({
  script: z.string(),
  statusUrl: z.string(),
  canary: z.boolean(),
  config: z.string(),
  state: z.enum(WORKER_STATES),
  /** The last fingerprint its status endpoint reported (for the failure report). */
  lastSeen: z.string().nullable().optional(),
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
  /** The old key at the provider (found in preflight; null with --keep-old). */
  oldKey: z.object({ id: z.string(), hint: z.string() }).nullable(),
  phase: z.enum(PHASES),
  workers: z.array(JournalWorker),
  persist: z.array(z.object({ config: z.string(), state: z.enum(["pending", "running", "done", "by-hand"]) })),
  revoke: z.enum(["pending", "sent", "done", "skipped"]),
  rollback: z.object({ reason: z.string(), failed: z.array(z.string()) }).nullable(),
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
  /**
   * Test hook, called after the n-th write of this store (a completed step, or the
   * intent recorded before an effect, step "(intent)"); throwing there simulates a crash.
   */
  afterStep?: (n: number, step: string) => void;
  now?: () => Date;
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
   * Records `step` as done (when given) and writes the journal atomically (temp file +
   * rename: a reader sees the old or the new journal, never half of one). `durable`
   * also fsyncs the file before the rename (~4 ms); per-Worker records skip it: a
   * process crash loses nothing either way (the page cache survives the process), and
   * after a power loss the worst case is that a few per-Worker records are missing,
   * which re-issues idempotent writes and re-polls. Phase changes, persist and revoke
   * are always fsynced.
   */
  commit(j: Journal, step?: string, durable = true): void {
    if (this.dead) throw new CrashedError();
    const at = (this.o.now?.() ?? new Date()).toISOString();
    j.updatedAt = at;
    if (step !== undefined) j.steps.push({ n: j.steps.length + 1, step, at });
    // Compact: a 300-Worker journal is rewritten ~1,000 times in a rotation.
    const text = `${JSON.stringify(j)}\n`;
    for (const s of this.o.secrets()) {
      if (s.length >= 8 && text.includes(s)) throw new JournalError("refusing to write a key into the journal (bug)");
    }
    mkdirSync(this.dir, { recursive: true });
    const file = this.path(j.id);
    const tmp = `${file}.${process.pid}.tmp`;
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, text);
      if (durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
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

  /** An exclusive lock so two runs never drive one rotation; stale locks (dead pid) are taken over. */
  lock(id: string): () => void {
    mkdirSync(this.dir, { recursive: true });
    const file = join(this.dir, `${id}.lock`);
    for (let i = 0; i < 2; i++) {
      try {
        const fd = openSync(file, "wx", 0o600);
        writeSync(fd, String(process.pid));
        closeSync(fd);
        return () => rmSync(file, { force: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        const pid = Number(readFileSync(file, "utf8").trim());
        if (Number.isInteger(pid) && pid > 0 && alive(pid)) throw new JournalError(`rotation ${id} is being run by process ${pid} (${file})`);
        rmSync(file, { force: true });
      }
    }
    throw new JournalError(`could not lock ${file}`);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
