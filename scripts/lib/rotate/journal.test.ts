// The journal's durability and its locks: the order of the calls that make a write
// survive a power loss (recorded through an injected fs layer), and the takeover of a
// stale lock by two contenders at once (interleaved exactly at the racy points, and as
// real concurrent processes).
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { acquireLock, JournalError, JournalStore, type Journal, type JournalFs } from "./journal.ts";

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});
const tmp = () => (dir = mkdtempSync(join(tmpdir(), "edgefleet-journal-")));

function journal(): Journal {
  const now = new Date(0).toISOString();
  return {
    version: 1, id: "j1", secret: "ANTHROPIC_API_KEY", provider: "anthropic", stack: "test", accountId: "a", createdAt: now, updatedAt: now,
    fingerprints: { new: "sha256:000000000001", old: "sha256:000000000002" }, options: { keepOld: false, confirmations: 3, concurrency: 2 },
    oldKey: { id: "apikey_1" }, phase: "stage", workers: [], persist: [], revoke: "pending", rollback: null, stopped: null, steps: [],
  };
}

/** A dead process id: a child that has exited (and been reaped). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", ""]);
  return r.pid!;
}

describe("journal writes survive a power loss", () => {
  it("each write: temp file written and fsynced, closed, renamed over the journal, then the directory fsynced", () => {
    const d = tmp();
    const calls: string[] = [];
    const name = (p: fs.PathLike) => String(p).replace(d, "<dir>").replace(/\.\d+\.tmp$/, ".tmp");
    const fds = new Map<number, string>();
    const rec: JournalFs = {
      openSync: ((p: fs.PathLike, flags: fs.OpenMode, mode?: fs.Mode) => {
        const fd = fs.openSync(p, flags, mode);
        fds.set(fd, name(p));
        calls.push(`open ${name(p)}`);
        return fd;
      }) as typeof fs.openSync,
      writeSync: ((fd: number, data: string) => {
        calls.push(`write ${fds.get(fd)}`);
        return fs.writeSync(fd, data);
      }) as typeof fs.writeSync,
      fsyncSync: (fd) => {
        calls.push(`fsync ${fds.get(fd)}`);
        fs.fsyncSync(fd);
      },
      closeSync: (fd) => {
        calls.push(`close ${fds.get(fd)}`);
        fs.closeSync(fd);
      },
      renameSync: (a, b) => {
        calls.push(`rename ${name(a)} -> ${name(b)}`);
        fs.renameSync(a, b);
      },
    };
    const store = new JournalStore({ dir: join(d, "rotations"), secrets: () => [], fs: rec });
    const j = journal();
    store.commit(j, "one");
    const first = [...calls];
    calls.length = 0;
    store.commit(j, "two");
    const write = [
      "open <dir>/rotations/j1.json.tmp", "write <dir>/rotations/j1.json.tmp", "fsync <dir>/rotations/j1.json.tmp", "close <dir>/rotations/j1.json.tmp",
      "rename <dir>/rotations/j1.json.tmp -> <dir>/rotations/j1.json",
      "open <dir>/rotations", "fsync <dir>/rotations", "close <dir>/rotations",
    ];
    // The first write also makes the new journal directory durable in its parent.
    expect(first).toEqual(["open <dir>", "fsync <dir>", "close <dir>", ...write]);
    expect(calls).toEqual(write);
    expect(store.load("j1").steps.map((s) => s.step)).toEqual(["one", "two"]);
  });

  it("a failing fsync fails the write (it is never silently skipped) and leaves the previous journal", () => {
    const d = tmp();
    const store = new JournalStore({ dir: d, secrets: () => [], fs: { ...fs, fsyncSync: () => { throw Object.assign(new Error("EIO: i/o error, fsync"), { code: "EIO" }); } } });
    const good = new JournalStore({ dir: d, secrets: () => [] });
    const j = journal();
    good.commit(j, "one");
    expect(() => store.commit(j, "two")).toThrow(/EIO/);
    expect(good.load("j1").steps.map((s) => s.step)).toEqual(["one"]);
  });
});

describe("locks", () => {
  it("a live holder keeps the lock; release frees it", () => {
    const d = tmp();
    const a = new JournalStore({ dir: d, secrets: () => [] });
    const release = a.lock("r");
    expect(JSON.parse(readFileSync(join(d, "r.lock"), "utf8"))).toMatchObject({ pid: process.pid });
    expect(() => a.lock("r")).toThrow(/rotation r is being run by process \d+/);
    release();
    a.lock("r")();
  });

  it("a lock naming this process's pid with a nonce it does not hold is stale (left from before a restart that reused the pid)", () => {
    const d = tmp();
    writeFileSync(join(d, "r.lock"), JSON.stringify({ pid: process.pid, nonce: "before-the-restart" }));
    const s = new JournalStore({ dir: d, secrets: () => [] });
    const release = s.lock("r");
    expect(JSON.parse(readFileSync(join(d, "r.lock"), "utf8")).nonce).not.toBe("before-the-restart");
    release();
  });

  it("a lock is held while its holder or a process it recorded as acting for it lives", () => {
    const d = tmp();
    const file = join(d, "x.lock");
    // The holder is dead, the process acting for it (this one's parent, alive) is not.
    writeFileSync(file, JSON.stringify({ pid: deadPid(), nonce: "gone", also: [process.ppid] }));
    expect(() => acquireLock(file, undefined, 0, "the state")).toThrow(`the state is being run by process ${process.ppid} (${file})`);
    // Both dead: taken over.
    writeFileSync(file, JSON.stringify({ pid: deadPid(), nonce: "gone", also: [deadPid()] }));
    const release = acquireLock(file, undefined, 0, "the state");
    // The holder records its own helpers; a release removes the lock.
    release.also([process.ppid]);
    expect(JSON.parse(readFileSync(file, "utf8"))).toMatchObject({ pid: process.pid, also: [process.ppid] });
    expect(fs.readdirSync(d)).toEqual(["x.lock"]);
    release();
    expect(fs.existsSync(file)).toBe(false);
  });

  it("a stale lock (dead pid, also in the old plain-pid format) is taken over", () => {
    const d = tmp();
    writeFileSync(join(d, "r.lock"), String(deadPid()));
    const s = new JournalStore({ dir: d, secrets: () => [] });
    const release = s.lock("r");
    expect(JSON.parse(readFileSync(join(d, "r.lock"), "utf8")).pid).toBe(process.pid);
    release();
    expect(fs.readdirSync(d)).toEqual([]);
  });

  // Two `--resume` runs after a crash, both reading the dead pid: interleave the second
  // one's whole attempt at each racy point of the first one's takeover. Exactly one wins.
  for (const at of ["afterStaleRead", "afterMarker"] as const) {
    it(`two concurrent takeovers of one stale lock: exactly one wins (second contender runs at ${at})`, () => {
      const d = tmp();
      writeFileSync(join(d, "r.lock"), JSON.stringify({ pid: deadPid(), nonce: "dead-run" }));
      const results: string[] = [];
      const b = new JournalStore({ dir: d, secrets: () => [] });
      let fired = false;
      const a = new JournalStore({
        dir: d,
        secrets: () => [],
        lockHooks: {
          [at]: (file: string) => {
            if (fired || !file.endsWith("r.lock")) return;
            fired = true;
            try {
              b.lock("r");
              results.push("b holds");
            } catch (e) {
              results.push(`b refused: ${(e as Error).message}`);
            }
          },
        },
      });
      try {
        a.lock("r");
        results.push("a holds");
      } catch (e) {
        if (!(e instanceof JournalError)) throw e;
        results.push(`a refused: ${e.message}`);
      }
      expect(fired).toBe(true);
      expect(results.filter((r) => r.endsWith("holds"))).toHaveLength(1);
      expect(results.find((r) => r.includes("refused"))).toMatch(/is being (run|taken over) by process \d+/);
    });
  }

  it("real processes racing for one stale lock: exactly one holds it", async () => {
    const d = tmp();
    writeFileSync(join(d, "r.lock"), JSON.stringify({ pid: deadPid(), nonce: "dead-run" }));
    const mod = new URL("./journal.ts", import.meta.url).href;
    const code = `
      const { JournalStore } = await import(${JSON.stringify(mod)});
      const s = new JournalStore({ dir: ${JSON.stringify(d)}, secrets: () => [] });
      let release;
      try { release = s.lock("r"); } catch (e) { console.log("busy " + e.message); process.exit(0); }
      console.log("got");
      process.stdin.on("end", () => { release(); process.exit(0); });
      process.stdin.resume();`;
    const n = 6;
    const children = Array.from({ length: n }, () => spawn(process.execPath, ["--input-type=module", "-e", code], { stdio: ["pipe", "pipe", "inherit"] }));
    const firstLines = await Promise.all(
      children.map(
        (c) =>
          new Promise<string>((resolve) => {
            let out = "";
            c.stdout.on("data", (b: Buffer) => {
              out += b.toString();
              if (out.includes("\n")) resolve(out.split("\n")[0]!);
            });
            c.on("close", () => resolve(out.split("\n")[0] ?? ""));
          }),
      ),
    );
    // Every contender has answered while the winner still holds the lock.
    for (const c of children) c.stdin.end();
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.on("close", r)))));
    expect(firstLines.filter((l) => l === "got")).toHaveLength(1);
    expect(firstLines.filter((l) => /^busy .*is being (run|taken over) by process \d+/.test(l))).toHaveLength(n - 1);
  });
});
