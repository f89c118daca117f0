// CPU time of the workerd processes the router benchmark starts, read from /proc
// (Linux). Throughput on a machine shared with other work swings from round to round;
// the CPU one request costs inside workerd is much steadier, so the benchmark reports
// both. Elsewhere (no /proc) every reading is undefined and the column shows "-".
import { procStat } from "../../../scripts/lib/workerd-process.ts";

export { withWorkerdPid } from "../../../scripts/lib/workerd-process.ts";

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** User + system CPU time of a process so far, in ms (10 ms resolution), or undefined. */
export function cpuMs(pid: string | undefined): number | undefined {
  const f = pid ? procStat(pid) : undefined;
  // utime and stime are fields 14 and 15 of stat; here at 12 and 13 (comm first, pid dropped).
  if (!f || f.length < 14) return undefined;
  return ((Number(f[12]) + Number(f[13])) * 1000) / TICKS_PER_SECOND;
}
