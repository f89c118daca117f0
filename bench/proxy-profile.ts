// Entry point of `npm run bench:proxy-profile`; the profiler is bench/lib/proxy/profile.ts.
import { runProfile } from "./lib/proxy/profile.ts";

process.exitCode = await runProfile(process.argv.slice(2));
