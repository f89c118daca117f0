// Entry point of `npm run bench:proxy`; the benchmark is bench/lib/proxy/run.ts.
import { runBench } from "./lib/proxy/run.ts";

process.exitCode = await runBench(process.argv.slice(2));
