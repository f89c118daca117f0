// Applied D1 migrations never change. Wrangler (and local/migrations.ts) match applied
// files by name only (workers-sdk d1/migrations/helpers.ts getUnappliedMigrationNames): an
// edited file would be skipped where it was applied and run where it was not, a renamed one
// would run again (and fail on every deploy: "duplicate column"), and a new file sorting
// before an applied one would run out of order. applied.sha256 pins every file.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { MIGRATIONS_DIR } from "../local/miniflare.ts";

const pinned = readFileSync(join(MIGRATIONS_DIR, "applied.sha256"), "utf8")
  .split("\n")
  .filter((l) => l.trim() !== "")
  .map((l) => {
    const m = /^([0-9a-f]{64}) {2}(\S+\.sql)$/.exec(l);
    if (!m) throw new Error(`applied.sha256: not a sha256sum line: ${l}`);
    return { sha256: m[1]!, file: m[2]! };
  });
const files = readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith(".sql")).sort();
const sha256 = (f: string) => createHash("sha256").update(readFileSync(join(MIGRATIONS_DIR, f))).digest("hex");

describe("the ledger's migrations are pinned (applied.sha256)", () => {
  it("every pinned file is there, unchanged: add a new file instead of editing an applied one", () => {
    for (const p of pinned) expect({ file: p.file, sha256: files.includes(p.file) ? sha256(p.file) : "missing" }).toEqual(p);
  });

  it("every file is pinned, in the order wrangler applies them (add the new file's sha256sum line with it)", () => {
    expect(pinned.map((p) => p.file)).toEqual(files);
    // Wrangler orders by the leading number, then the name; zero-padded names sort alike.
    for (const f of files) expect(f).toMatch(/^\d{4}_[a-z0-9_]+\.sql$/);
  });
});
