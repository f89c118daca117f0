// House rule: operator code never imports test code. Everything that ships (scripts/,
// stacks/, policies/, and each Worker's folder outside its test/) is scanned; an import
// of a test folder (test/, workers/<name>/test/, any fakes/ folder) or of a file named
// fake* fails the test, naming the importer, the line and the import. Fakes and fixtures
// live under test/ (test/fakes/, test/fixtures/, test/support/); Workers' local-run code
// under workers/<name>/local/. Imports are read with TypeScript's own pre-processor, so
// static imports, re-exports, `import()` and `require()` all count.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const SHIPPED = ["scripts", "stacks", "policies", "workers"];
const SOURCE = /\.(ts|mts|cts|js|mjs|cjs|tsx)$/;

/**
 * Known violations that other branches remove (issue 13 item 7). An entry is either
 * "importer -> imported" (an import of test code) or a path or folder prefix (a fake
 * that sits among shipped code). DELETE THIS LIST once those branches are merged: the
 * test must then pass with it empty (an entry that no longer matches fails it, so the
 * list can only shrink).
 */
export const KNOWN_VIOLATIONS_BEING_REMOVED: readonly string[] = [
];

/** Shipped source files: not tests, not in a test folder. */
function shippedFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        // Test folders are skipped; a fakes/ or fixtures/ folder among shipped code is not:
        // it is itself reported below (test code must live under test/).
        if (e.name === "node_modules" || e.name.startsWith(".") || TEST_DIRS.has(e.name)) continue;
        walk(p);
      } else if (SOURCE.test(e.name) && !/\.(test|spec)\.[^.]+$/.test(e.name) && !e.name.endsWith(".d.ts")) {
        out.push(p.split(sep).join("/"));
      }
    }
  };
  for (const d of SHIPPED) walk(d);
  return out.sort();
}

const TEST_DIRS = new Set(["test", "tests", "__tests__"]);
function isTestFolder(name: string): boolean {
  return TEST_DIRS.has(name) || name === "fakes" || name === "fixtures";
}

/** Whether a repository path is test code: under a test folder, or a file named fake*. */
export function isTestPath(path: string): boolean {
  const parts = path.split("/");
  if (parts.slice(0, -1).some(isTestFolder)) return true;
  return /^fake/i.test(parts.at(-1)!);
}

/** The imports of one file that reach test code, as "importer -> imported" with the line. */
export function testImports(file: string, text: string): { edge: string; line: number; spec: string }[] {
  const found: { edge: string; line: number; spec: string }[] = [];
  const info = ts.preProcessFile(text, true, true);
  for (const ref of info.importedFiles) {
    const spec = ref.fileName;
    if (!spec.startsWith(".") && !spec.startsWith("/")) continue; // a package, not our code
    const target = relative(ROOT, resolve(ROOT, dirname(file), spec)).split(sep).join("/");
    if (!isTestPath(target)) continue;
    found.push({ edge: `${file} -> ${target}`, line: text.slice(0, ref.pos).split("\n").length, spec });
  }
  return found;
}

describe("house rule: operator code never imports test code", () => {
  const files = shippedFiles();

  it("scans the shipped folders (and only them)", () => {
    expect(files).toContain("scripts/plan.ts");
    expect(files).toContain("stacks/model/diff.ts");
    expect(files).toContain("policies/index.ts");
    expect(files).toContain("workers/llm-proxy/src/index.ts");
    expect(files.some((f) => f.startsWith("workers/llm-proxy/local/"))).toBe(true);
    expect(files.filter((f) => /\.test\.ts$|\/test\//.test(f))).toEqual([]);
  });

  it("recognises every way of reaching test code (so a pass means something)", () => {
    const text = [
      'import { a } from "../../test/support/loopback.ts";',
      'export { b } from "../../workers/router/test/harness.ts";',
      'const c = await import("./fakes/kv.ts");',
      'const d = require("../lib/fake-cloudflare.ts");',
      'import e from "../../test/fakes/anthropic-messages-api.ts";',
      'import type { F } from "../../test/fixtures/policies.ts";',
      'import { ok } from "./plan.ts";',
      'import { z } from "zod";',
      'import { g } from "./latest-fakery.ts";',
    ].join("\n");
    const hits = testImports("scripts/lib/x.ts", text);
    expect(hits.map((h) => [h.line, h.edge])).toEqual([
      [1, "scripts/lib/x.ts -> test/support/loopback.ts"],
      [2, "scripts/lib/x.ts -> workers/router/test/harness.ts"],
      [3, "scripts/lib/x.ts -> scripts/lib/fakes/kv.ts"],
      [4, "scripts/lib/x.ts -> scripts/lib/fake-cloudflare.ts"],
      [5, "scripts/lib/x.ts -> test/fakes/anthropic-messages-api.ts"],
      [6, "scripts/lib/x.ts -> test/fixtures/policies.ts"],
    ]);
  });

  const isKnownFile = (f: string) => KNOWN_VIOLATIONS_BEING_REMOVED.some((k) => !k.includes(" -> ") && f.startsWith(k));

  it("no shipped file imports a test folder or a fake (beyond the known list other branches remove)", () => {
    // A misplaced fake importing another fake is reported once, as a misplaced file (below).
    const found = files.filter((f) => !isTestPath(f)).flatMap((f) => testImports(f, readFileSync(join(ROOT, f), "utf8")));
    const known = new Set(KNOWN_VIOLATIONS_BEING_REMOVED.filter((k) => k.includes(" -> ")));
    const unexpected = found.filter((h) => !known.has(h.edge)).map((h) => `${h.edge.split(" -> ")[0]}:${h.line}: imports '${h.spec}' (test code)`);
    expect(unexpected, "operator code imports test code; move the fake or fixture under test/").toEqual([]);
    const stale = [...known].filter((k) => !found.some((h) => h.edge === k));
    expect(stale, "fixed: remove these from KNOWN_VIOLATIONS_BEING_REMOVED").toEqual([]);
  });

  it("no fake or fixture (a file named fake*, a fakes/ or fixtures/ folder) sits among shipped code (beyond the known list)", () => {
    const misplaced = files.filter(isTestPath);
    expect(misplaced.filter((f) => !isKnownFile(f)), "move it under test/ (test/fakes/, test/fixtures/)").toEqual([]);
    const stale = KNOWN_VIOLATIONS_BEING_REMOVED.filter((k) => !k.includes(" -> ") && !misplaced.some((f) => f.startsWith(k)));
    expect(stale, "fixed: remove these from KNOWN_VIOLATIONS_BEING_REMOVED").toEqual([]);
  });
});
