// Preloaded into a benchmarked process (node --import): at exit, writes the process's
// peak resident set size in kilobytes to the file named by EDGEFLEET_RSS_FILE.
import { writeFileSync } from "node:fs";

const file = process.env.EDGEFLEET_RSS_FILE;
if (file) process.on("exit", () => writeFileSync(file, String(process.resourceUsage().maxRSS)));
