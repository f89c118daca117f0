// bench:proxy-ab's pieces that decide its answer: the per-round pairing and the base build.
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { bundleAt, paired, type Slice } from "./ab.ts";

const slice = (round: number, side: Slice["side"], calls: number, cpuMs?: number): Slice => ({ round, side, calls, cpuMs });

describe("paired", () => {
  it("pairs each round's slices, takes the median and quartiles of the ratios, and pools the sums apart", () => {
    const slices = [
      slice(0, "base", 100), slice(0, "head", 110),
      slice(1, "head", 90), slice(1, "base", 100),
      slice(2, "base", 200), slice(2, "head", 200),
      slice(3, "base", 100), slice(3, "head", 130),
    ];
    const p = paired(slices, "head", "base", (s) => s.calls, (side) => slices.filter((s) => s.side === side).reduce((n, s) => n + s.calls, 0));
    expect(p.rounds).toBe(4);
    // Ratios 0.9, 1.0, 1.1, 1.3: the median of an even count is the mean of the middle two.
    expect(p.median).toBeCloseTo(1.05, 10);
    expect(p.q1).toBeCloseTo(1.0, 10);
    expect(p.q3).toBeCloseTo(1.3, 10);
    // Pooled: 530 / 500, not the mean of the ratios.
    expect(p.pooled).toBeCloseTo(1.06, 10);
  });

  it("leaves out a round that one side lacks or could not measure", () => {
    const slices = [slice(0, "base", 100, 50), slice(0, "head", 100, undefined), slice(1, "base", 100, 50), slice(1, "head", 100, 60), slice(2, "head", 100, 70)];
    const p = paired(slices, "head", "base", (s) => (s.cpuMs === undefined ? undefined : s.cpuMs / s.calls), () => 1);
    expect(p.rounds).toBe(1);
    expect(p.median).toBeCloseTo(1.2, 10);
  });
});

describe("bundleAt", () => {
  const worktrees = () => spawnSync("git", ["worktree", "list", "--porcelain"], { encoding: "utf8" }).stdout;

  it("bundles the proxy of a revision and leaves no worktree behind", () => {
    const before = worktrees();
    const { script, commit } = bundleAt("HEAD");
    expect(commit).toMatch(/^[0-9a-f]{40}$/);
    expect(commit).toBe(spawnSync("git", ["rev-parse", "HEAD"], { encoding: "utf8" }).stdout.trim());
    // An ES module Worker: a default export with a fetch handler, and the proxy's own Durable Object class.
    expect(script).toMatch(/export\s*\{[^}]*as default/);
    expect(script).toContain("RateLimiter");
    expect(worktrees()).toBe(before);
  });

  it("refuses a revision that does not exist, naming it, and leaves no worktree behind", () => {
    const before = worktrees();
    expect(() => bundleAt("no-such-revision-xyz")).toThrow(/no-such-revision-xyz/);
    expect(worktrees()).toBe(before);
  });
});
