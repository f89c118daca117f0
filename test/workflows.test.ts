// The operator's CI workflows: linted with action-validator (GitHub's published
// workflow schema, compiled to WebAssembly), and checked for what edgefleet needs:
// preview with the policy pack on pull requests, one `pulumi up` at a time on main,
// credentials only from secrets.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";

const { validateWorkflow } = createRequire(import.meta.url)("@action-validator/core") as {
  validateWorkflow(src: string): { errors: { code: string; detail?: string; path?: string; title: string }[] };
};

const DIR = ".github/workflows";
const files = readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f));
const load = (f: string) => ({ text: readFileSync(join(DIR, f), "utf8"), doc: parse(readFileSync(join(DIR, f), "utf8")) as Record<string, any> });

interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
}
const steps = (doc: Record<string, any>): Step[] => Object.values(doc.jobs as Record<string, { steps: Step[] }>).flatMap((j) => j.steps);

describe("CI workflows", () => {
  it("has the preview and up workflows", () => {
    expect(files.sort()).toEqual(["preview.yml", "up.yml"]);
  });

  it.each(files)("%s passes the workflow linter", (f) => {
    expect(validateWorkflow(load(f).text).errors).toEqual([]);
  });

  it("the linter catches a broken workflow (so a pass means something)", () => {
    const broken = load("up.yml").text.replace("runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04");
    expect(validateWorkflow(broken).errors.length).toBeGreaterThan(0);
  });

  it("previews pull requests with the policy pack after the tests and the plan diff", () => {
    const { doc } = load("preview.yml");
    expect(Object.keys(doc.on)).toEqual(["pull_request"]);
    const s = steps(doc);
    const order = (pred: (x: Step) => boolean) => s.findIndex(pred);
    const preview = s.find((x) => x.uses?.startsWith("pulumi/actions@"))!;
    expect(preview.with).toMatchObject({ command: "preview", diff: true, policyPacks: "policies" });
    expect(order((x) => x.run === "npm test")).toBeGreaterThan(order((x) => x.run === "npm ci"));
    expect(order((x) => /npm run plan -- --base/.test(x.run ?? ""))).toBeGreaterThan(order((x) => x.run === "npm test"));
    expect(order((x) => x === preview)).toBeGreaterThan(order((x) => /npm run plan/.test(x.run ?? "")));
    expect(s.find((x) => x.uses?.startsWith("actions/checkout@"))!.with).toMatchObject({ "fetch-depth": 0 });
  });

  it("runs pulumi up on main one at a time", () => {
    const { doc } = load("up.yml");
    expect(doc.on.push.branches).toEqual(["main"]);
    expect(doc.concurrency).toMatchObject({ "cancel-in-progress": false });
    expect(String(doc.concurrency.group)).toMatch(/^pulumi-up-/);
    const up = steps(doc).find((x) => x.uses?.startsWith("pulumi/actions@"))!;
    expect(up.with).toMatchObject({ command: "up", policyPacks: "policies" });
    // Then the content map, into the namespace the up created (its stack output).
    const all = steps(doc);
    const publish = all.findIndex((x) => x.run?.includes("npm run sites -- publish"));
    expect(publish).toBeGreaterThan(all.indexOf(up));
    expect(all[publish]!.run).toContain("${{ steps.up.outputs.sitesNamespaceId }}");
  });

  it.each(files)("%s takes credentials only from secrets", (f) => {
    const { doc } = load(f);
    for (const step of steps(doc)) {
      for (const [k, v] of Object.entries(step.env ?? {})) {
        if (/TOKEN|SECRET|PASSPHRASE|KEY/.test(k)) expect(v, `${f}: ${k}`).toMatch(/^\$\{\{ secrets\.[A-Z_]+ \}\}$/);
      }
    }
  });
});
