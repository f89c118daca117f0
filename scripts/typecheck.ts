// `npm run typecheck`: type-checks the root project and every Worker's own
// tsconfig.json (Workers compile against @cloudflare/workers-types, not Node's types).
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

const projects = ["tsconfig.json"];
const walk = (dir: string, depth: number) => {
  if (!existsSync(dir) || depth < 0) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === "node_modules" || e.name.startsWith(".")) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, depth - 1);
    else if (e.name === "tsconfig.json") projects.push(p);
  }
};
walk("workers", 3);
let failed = 0;
for (const p of projects) {
  try {
    execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", p], { stdio: "inherit" });
  } catch {
    failed++;
    console.error(`typecheck: ${p} has type errors`);
  }
}
process.exitCode = failed > 0 ? 1 : 0;
