// The workerd processes this Node process started (Miniflare spawns one per instance),
// found in /proc (Linux): the benchmarks read their CPU time (bench/lib/router/cpu.ts), and
// `npm run dev:proxy` records its workerd in its state lock, since a workerd outlives a
// Node process killed with SIGKILL and goes on serving (and writing) the state.
// Elsewhere (no /proc) nothing is found.
import { readdirSync, readFileSync } from "node:fs";

/** /proc/<pid>/stat as fields: comm first, then state, ppid, ... (the pid dropped). */
export function procStat(pid: string): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
    const close = text.lastIndexOf(")");
    return [text.slice(text.indexOf("(") + 1, close), ...text.slice(close + 2).split(" ")];
  } catch {
    return undefined;
  }
}

/** The workerd processes this process started. */
function workerdChildren(): Set<string> {
  const out = new Set<string>();
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const pid of pids) {
    const f = procStat(pid);
    // f[0] comm, f[1] state, f[2] ppid
    if (f && f[0] === "workerd" && f[2] === String(process.pid)) out.add(pid);
  }
  return out;
}

/** Starts something that spawns one workerd, and returns it with that process's pid. */
export async function withWorkerdPid<T>(start: () => Promise<T>): Promise<{ value: T; pid: string | undefined }> {
  const before = workerdChildren();
  const value = await start();
  const fresh = [...workerdChildren()].filter((p) => !before.has(p));
  return { value, pid: fresh.length === 1 ? fresh[0] : undefined };
}
