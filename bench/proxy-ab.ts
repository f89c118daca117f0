// Entry point of `npm run bench:proxy-ab`; the comparison is bench/lib/proxy/ab.ts.
import { runAb } from "./lib/proxy/ab.ts";

process.exitCode = await runAb(process.argv.slice(2));
