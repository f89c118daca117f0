// CPU time of the workerd processes the router benchmark starts, read from /proc
// (Linux). Throughput on a machine shared with other work swings from round to round;
// the CPU one request costs inside workerd is much steadier, so the benchmark reports
// both. Elsewhere (no /proc) every reading is undefined and the column shows "-".
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

function stat(pid: string): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
    const close = text.lastIndexOf(")");
    return [text.slice(text.indexOf("(") + 1, close), ...text.slice(close + 2).split(" ")];
  } catch {
    return undefined;
  }
}

/** The workerd processes this process started (Miniflare spawns one per instance). */
export function workerdChildren(): Set<string> {
  const out = new Set<string>();
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const pid of pids) {
    const f = stat(pid);
    // f[0] comm, f[1] state, f[2] ppid
    if (f && f[0] === "workerd" && f[2] === String(process.pid)) out.add(pid);
  }
  return out;
}

/** User + system CPU time of a process so far, in ms (10 ms resolution), or undefined. */
export function cpuMs(pid: string | undefined): number | undefined {
  const f = pid ? stat(pid) : undefined;
  // utime and stime are fields 14 and 15 of stat; here at 12 and 13 (comm first, pid dropped).
  if (!f || f.length < 14) return undefined;
  return ((Number(f[12]) + Number(f[13])) * 1000) / TICKS_PER_SECOND;
}

/** Starts something that spawns one workerd, and returns it with that process's pid. */
export async function withWorkerdPid<T>(start: () => Promise<T>): Promise<{ value: T; pid: string | undefined }> {
  const before = workerdChildren();
  const value = await start();
  const fresh = [...workerdChildren()].filter((p) => !before.has(p));
  return { value, pid: fresh.length === 1 ? fresh[0] : undefined };
}
