// Entry point of `npm run bench:proxy-same-process`; the benchmark is bench/lib/proxy/same-process.ts.
import { runSameProcess } from "./lib/proxy/same-process.ts";

process.exitCode = await runSameProcess(process.argv.slice(2));
