// The operator's CI workflows: linted with action-validator (GitHub's published
// workflow schema, compiled to WebAssembly), and checked for what edgefleet needs:
// preview with the policy pack on pull requests, one `pulumi up` at a time on main,
// credentials only from secrets, pulumi/actions v7, a failed login failing the job,
// forks getting the offline plan and a note. The steps' shell scripts are run here with
// bash as GitHub runs `shell: bash` (`bash --noprofile --norc -eo pipefail {0}`,
// GitHub's workflow syntax docs), with a stand-in `pulumi` on PATH.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { DEAD_LETTERS_EXIT } from "../scripts/lib/dead-letters/cli.ts";

const { validateWorkflow } = createRequire(import.meta.url)("@action-validator/core") as {
  validateWorkflow(src: string): { errors: { code: string; detail?: string; path?: string; title: string }[] };
};

const DIR = ".github/workflows";
const files = readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f));
/** The workflows that run Pulumi (dead-letters.yml does not). */
const PULUMI = ["preview.yml", "up.yml"];
const load = (f: string) => ({ text: readFileSync(join(DIR, f), "utf8"), doc: parse(readFileSync(join(DIR, f), "utf8")) as Record<string, any> });

interface Step {
  name?: string;
  id?: string;
  if?: string;
  shell?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
}
const steps = (doc: Record<string, any>): Step[] => Object.values(doc.jobs as Record<string, { steps: Step[] }>).flatMap((j) => j.steps);

describe("CI workflows", () => {
  it("has the preview, up and dead-letter alert workflows", () => {
    expect(files.sort()).toEqual(["dead-letters.yml", "preview.yml", "up.yml"]);
  });

  it("checks the usage ledger's DLQ every hour; when the check job fails, a job without checkout opens an issue (or comments on the open one)", () => {
    const { doc } = load("dead-letters.yml");
    expect(doc.on.schedule).toEqual([{ cron: expect.stringMatching(/^\d{1,2} \* \* \* \*$/) }]);
    // No environment: required reviewers would hold every hourly run, and a waiting run alerts nobody.
    for (const job of Object.values(doc.jobs as Record<string, object>)) expect(job).not.toHaveProperty("environment");
    // Only the alert job can write issues, and it checks nothing out and installs nothing.
    expect(doc.permissions).toEqual({ contents: "read" });
    expect(doc.jobs.check.permissions).toEqual({ contents: "read" });
    expect(doc.jobs.alert).toMatchObject({ needs: "check", if: "failure()", permissions: { issues: "write" } });
    expect((doc.jobs.alert.steps as Step[]).filter((x) => x.uses !== undefined || x.run === "npm ci")).toEqual([]);
    const checkSteps = doc.jobs.check.steps as Step[];
    expect(checkSteps.find((x) => x.uses?.startsWith("actions/checkout@"))!.with).toEqual({ "persist-credentials": false });
    const check = checkSteps.find((x) => /npm run --silent dead-letters -- check/.test(x.run ?? ""))!;
    expect(check.id).toBe("check");
    expect(check).not.toHaveProperty("continue-on-error");
    expect(check.env).toMatchObject({ CLOUDFLARE_API_TOKEN: "${{ secrets.CLOUDFLARE_QUEUES_READ_TOKEN }}", CLOUDFLARE_ACCOUNT_ID: "${{ vars.CLOUDFLARE_ACCOUNT_ID }}" });
    expect(checkSteps.findIndex((x) => x.run === "npm ci")).toBeLessThan(checkSteps.indexOf(check));
    expect(doc.jobs.check.outputs).toEqual({ code: "${{ steps.check.outputs.code }}", report: "${{ steps.check.outputs.report }}" });
    // Run it with a stand-in npm: the check's exit code is the step's, the threshold is 0
    // unless the repository variable says otherwise, and the code and report become outputs
    // (the report cannot end its value early, whatever it holds).
    const alert = runStep(check, { MAX_BACKLOG: "", FAKE_NPM_EXIT: "4", FAKE_NPM_OUT: "ALERT: 3 usage event(s)\nEOF\nreport<<EOF" });
    expect(alert.status).toBe(4);
    expect(alert.npm).toEqual(["run --silent dead-letters -- check --max-backlog 0"]);
    expect(alert.stdout).toContain("ALERT: 3 usage event(s)");
    const out = alert.output.split("\n");
    expect(out[0]).toBe("code=4");
    const delim = out[1]!.replace(/^report<</, "");
    expect(delim).toMatch(/^EOF_[0-9a-f]{32}$/);
    expect(out.slice(2, out.indexOf(delim))).toEqual(["ALERT: 3 usage event(s)", "EOF", "report<<EOF", ""]);
    const ok = runStep(check, { MAX_BACKLOG: "25", FAKE_NPM_EXIT: "0" });
    expect(ok.status).toBe(0);
    expect(ok.npm).toEqual(["run --silent dead-letters -- check --max-backlog 25"]);
    expect(ok.output.split("\n")[0]).toBe("code=0");
    // The alert job: a new issue, or a comment on the open one; the title says which failure.
    const issue = (doc.jobs.alert.steps as Step[])[0]!;
    expect(issue.env).toMatchObject({ CODE: "${{ needs.check.outputs.code }}", REPORT: "${{ needs.check.outputs.report }}", GH_TOKEN: "${{ secrets.GITHUB_TOKEN }}" });
    const created = runStep(issue, { CODE: "4", REPORT: "ALERT: 3 usage event(s)", RUN_URL: "https://github.example/run/1", FAKE_GH_OPEN: "" });
    expect(created.status).toBe(0);
    expect(created.gh.map((c) => c.split(" ").slice(0, 2).join(" "))).toEqual(["issue list", "issue create"]);
    expect(created.gh[1]).toContain("--title Usage ledger: events in the dead-letter queue");
    expect(created.gh[1]).toContain("https://github.example/run/1");
    expect(created.gh[1]).toContain("ALERT: 3 usage event(s)");
    const commented = runStep(issue, { CODE: "4", REPORT: "x", RUN_URL: "u", FAKE_GH_OPEN: "17" });
    expect(commented.gh.map((c) => c.split(" ").slice(0, 3).join(" "))).toEqual(["issue list --state", "issue comment 17"]);
    // The check could not tell (exit 1), or did not run at all (npm ci failed): its own title.
    for (const code of ["1", ""]) {
      const r = runStep(issue, { CODE: code, REPORT: "", RUN_URL: "u", FAKE_GH_OPEN: "" });
      expect(r.gh[1]).toContain("--title Usage ledger: the hourly dead-letter check failed");
    }
    // A failed issue lookup still opens an issue.
    const lookupDown = runStep(issue, { CODE: "4", REPORT: "x", RUN_URL: "u", FAKE_GH_LIST_EXIT: "1" });
    expect(lookupDown.status).toBe(0);
    expect(lookupDown.gh.at(-1)).toMatch(/^issue create /);
    // The command and its exit code exist as the workflow expects them.
    const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { scripts: Record<string, string> };
    expect(pkg.scripts["dead-letters"]).toBeDefined();
    expect(DEAD_LETTERS_EXIT.alert).toBe(4);
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
    const preview = s.find((x) => x.uses?.startsWith("pulumi/actions@") && x.with?.command)!;
    expect(preview.with).toMatchObject({ command: "preview", diff: true, policyPacks: "policies" });
    expect(order((x) => x.run === "npm test")).toBeGreaterThan(order((x) => x.run === "npm ci"));
    expect(order((x) => /npm run --silent plan -- --base/.test(x.run ?? ""))).toBeGreaterThan(order((x) => x.run === "npm test"));
    expect(order((x) => x === preview)).toBeGreaterThan(order((x) => /npm run plan/.test(x.run ?? "")));
    expect(s.find((x) => x.uses?.startsWith("actions/checkout@"))!.with).toMatchObject({ "fetch-depth": 0 });
  });

  it("runs pulumi up on main one at a time", () => {
    const { doc } = load("up.yml");
    expect(doc.on.push.branches).toEqual(["main"]);
    expect(doc.concurrency).toMatchObject({ "cancel-in-progress": false });
    expect(String(doc.concurrency.group)).toMatch(/^pulumi-up-/);
    const up = steps(doc).find((x) => x.uses?.startsWith("pulumi/actions@") && x.with?.command)!;
    expect(up.with).toMatchObject({ command: "up", policyPacks: "policies" });
    // Then the content map, into the namespace the up created (its stack output).
    const all = steps(doc);
    const publish = all.findIndex((x) => x.run?.includes("npm run sites -- publish"));
    expect(publish).toBeGreaterThan(all.indexOf(up));
    expect(all[publish]!.env).toMatchObject({ SITES_NAMESPACE_ID: "${{ steps.up.outputs.sitesNamespaceId }}" });
    // A stack without the router exports no sitesNamespaceId: the step is skipped, not run with an empty id.
    expect(all[publish]!.if).toBe("steps.up.outputs.sitesNamespaceId != ''");
  });

  it("applies D1 migrations with the stack's ids before pulumi up (skipping databases not created yet) and again after it; preview lists them", () => {
    const all = steps(load("up.yml").doc);
    const login = all.findIndex((x) => /pulumi login/.test(x.run ?? ""));
    const up = all.findIndex((x) => x.id === "up");
    const migrations = all.flatMap((x, i) => (/npm run --silent d1-migrations/.test(x.run ?? "") ? [i] : []));
    expect(migrations).toHaveLength(2);
    const [before, after] = migrations as [number, number];
    expect(login).toBeLessThan(before);
    expect(before).toBeLessThan(up);
    expect(all[before]!.run).toContain("--skip-missing");
    expect(after).toBeGreaterThan(up);
    expect(all[after]!.run).not.toContain("--skip-missing");
    for (const i of migrations) {
      expect(all[i]!.run).toContain('--stack "$STACK"');
      expect(all[i]!.env).toMatchObject({ STACK: "${{ vars.PULUMI_STACK || 'prod' }}", CLOUDFLARE_API_TOKEN: "${{ secrets.CLOUDFLARE_API_TOKEN }}" });
    }
    // The same command exists, and takes these options.
    const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { scripts: Record<string, string> };
    expect(pkg.scripts["d1-migrations"]).toBe("node scripts/d1-migrations.ts");
    const pre = steps(load("preview.yml").doc);
    const dry = pre.findIndex((x) => /d1-migrations .*--dry-run/.test(x.run ?? ""));
    expect(dry).toBeGreaterThan(pre.findIndex((x) => /pulumi login/.test(x.run ?? "")));
  });

  it.each(files)("%s takes credentials only from secrets", (f) => {
    const { doc } = load(f);
    for (const step of steps(doc)) {
      for (const [k, v] of Object.entries(step.env ?? {})) {
        if (/TOKEN|SECRET|PASSPHRASE|KEY/.test(k)) expect(v, `${f}: ${k}`).toMatch(/^\$\{\{ secrets\.[A-Z_]+ \}\}$/);
      }
    }
  });

  it.each(PULUMI)("%s uses pulumi/actions v7 (node24) and node24 majors of checkout and setup-node", (f) => {
    const uses = steps(load(f).doc).flatMap((x) => (x.uses ? [x.uses] : []));
    const pulumi = uses.filter((u) => u.startsWith("pulumi/actions@"));
    expect(pulumi.length).toBeGreaterThan(0);
    for (const u of pulumi) expect(u).toBe("pulumi/actions@v7");
    expect(uses).toContain("actions/checkout@v6");
    expect(uses).toContain("actions/setup-node@v6");
  });

  it.each(PULUMI)("%s logs in to Pulumi in its own step before any Pulumi command, and that step fails the job", (f) => {
    const all = steps(load(f).doc);
    const install = all.findIndex((x) => x.uses?.startsWith("pulumi/actions@") && !x.with?.command);
    const login = all.findIndex((x) => /pulumi login/.test(x.run ?? ""));
    const commands = all.flatMap((x, i) => (x.uses?.startsWith("pulumi/actions@") && x.with?.command ? [i] : []));
    expect(install).toBeGreaterThanOrEqual(0);
    expect(login).toBeGreaterThan(install);
    for (const i of commands) {
      expect(i).toBeGreaterThan(login);
      expect(all[i]!.if).toBe(all[login]!.if); // never a preview or up without the checked login
    }
    const step = all[login]!;
    expect(step.shell).toBe("bash");
    expect(step).not.toHaveProperty("continue-on-error");
    // Run it: a login the CLI refuses fails the step; one it accepts passes.
    const failed = runStep(step, { PULUMI_BACKEND_URL: "s3://state?endpoint=x", FAKE_PULUMI_LOGIN_EXIT: "255" });
    expect(failed.status).not.toBe(0);
    expect(failed.calls).toEqual(["--non-interactive s3://state?endpoint=x"]); // stopped at the failed login
    const ok = runStep(step, { PULUMI_BACKEND_URL: "", FAKE_PULUMI_LOGIN_EXIT: "0" });
    expect(ok.status).toBe(0);
    expect(ok.calls).toEqual(["--non-interactive", "whoami --non-interactive --verbose"]);
  });

  it("judges pull requests against the protected default branch, whatever branch they target", () => {
    const { doc } = load("preview.yml");
    expect(doc.on.pull_request).toEqual({}); // every pull request, not only those into main
    const all = steps(doc);
    const fetch = all.find((x) => /git fetch/.test(x.run ?? ""))!;
    const plan = all.find((x) => /npm run --silent plan -- --base/.test(x.run ?? ""))!;
    for (const x of [fetch, plan]) expect(x.env).toMatchObject({ DEFAULT_BRANCH: "${{ github.event.repository.default_branch }}" });
    expect(fetch.run).toContain('"+refs/heads/${DEFAULT_BRANCH}:refs/remotes/origin/${DEFAULT_BRANCH}"');
    expect(plan.run).toContain('--base "origin/${DEFAULT_BRANCH}"');
    expect(all.indexOf(fetch)).toBeLessThan(all.indexOf(plan));
    expect(JSON.stringify(doc)).not.toContain("github.base_ref");
    // The plan's exit code survives the tee into the summary (pipefail under shell: bash).
    expect(plan.shell).toBe("bash");
  });

  it("gives pull requests from forks the offline plan and a note instead of a preview", () => {
    const all = steps(load("preview.yml").doc);
    const access = all.find((x) => x.id === "access")!;
    expect(access.env).toMatchObject({ FORK: "${{ github.event.pull_request.head.repo.fork }}" });
    const gated = all.filter((x) => x.if === "steps.access.outputs.preview == 'true'");
    // Every step that needs a secret is gated; the tests and the offline plan are not.
    for (const x of all) {
      const needsSecret = Object.values(x.env ?? {}).some((v) => /secrets\./.test(v)) && x !== access;
      if (needsSecret) expect(gated, x.name ?? x.uses).toContain(x);
    }
    expect(gated.map((x) => x.uses ?? x.name)).toEqual(["pulumi/actions@v7", "pulumi login (a failure fails the job)", "D1 migrations the up would apply (dry run)", "pulumi/actions@v7"]);
    const plan = all.find((x) => /npm run --silent plan/.test(x.run ?? ""))!;
    expect(plan.if).toBeUndefined();

    const fork = runStep(access, { FORK: "true", PULUMI_ACCESS_TOKEN: "", AWS_ACCESS_KEY_ID: "" });
    expect(fork.status).toBe(0);
    expect(fork.output).toBe("preview=false\n");
    expect(fork.summary).toContain("No pulumi preview");
    expect(fork.stdout).toMatch(/^::notice title=No pulumi preview::.*fork/m);
    // A fork is judged by the flag, even if a secret were somehow present.
    expect(runStep(access, { FORK: "true", PULUMI_ACCESS_TOKEN: "t" }).output).toBe("preview=false\n");
    // Same repository without any state credentials (e.g. Dependabot): a note, no red preview.
    expect(runStep(access, { FORK: "false", PULUMI_ACCESS_TOKEN: "", AWS_ACCESS_KEY_ID: "" }).output).toBe("preview=false\n");
    expect(runStep(access, { FORK: "false", PULUMI_ACCESS_TOKEN: "pul-x", AWS_ACCESS_KEY_ID: "" }).output).toBe("preview=true\n");
    expect(runStep(access, { FORK: "false", PULUMI_ACCESS_TOKEN: "", AWS_ACCESS_KEY_ID: "AKIA" }).output).toBe("preview=true\n");
  });
});

/** Runs a step's script as GitHub's `shell: bash` does, with `env`, a stand-in `pulumi`
 * that records its arguments and exits FAKE_PULUMI_LOGIN_EXIT for `login`, and a stand-in
 * `npm` that records its arguments, prints FAKE_NPM_OUT to stderr and exits FAKE_NPM_EXIT,
 * a stand-in `gh` (see below), and RUNNER_TEMP (holding CHECK_OUTPUT as dead-letters.txt). */
function runStep(step: Step, env: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), "edgefleet-wf-"));
  const calls = join(dir, "calls");
  writeFileSync(calls, "");
  writeFileSync(
    join(dir, "pulumi"),
    `#!/bin/bash\necho "$*" >> "${calls}"\nif [ "$1" = login ]; then exit "\${FAKE_PULUMI_LOGIN_EXIT:-0}"; fi\n`,
  );
  chmodSync(join(dir, "pulumi"), 0o755);
  const npmCalls = join(dir, "npm-calls");
  writeFileSync(npmCalls, "");
  writeFileSync(join(dir, "npm"), `#!/bin/bash\necho "$*" >> "${npmCalls}"\n[ -n "\${FAKE_NPM_OUT:-}" ] && echo "$FAKE_NPM_OUT" >&2\nexit "\${FAKE_NPM_EXIT:-0}"\n`);
  chmodSync(join(dir, "npm"), 0o755);
  // A stand-in gh: records each call (arguments joined by spaces); `issue list` prints
  // FAKE_GH_OPEN as the open issue's number (empty: none) and exits FAKE_GH_LIST_EXIT.
  const ghCalls = join(dir, "gh-calls");
  writeFileSync(ghCalls, "");
  writeFileSync(join(dir, "gh"), `#!/bin/bash\nprintf '%s\\0' "$*" >> "${ghCalls}"\nif [ "$1 $2" = "issue list" ]; then printf '%s' "\${FAKE_GH_OPEN:-}"; exit "\${FAKE_GH_LIST_EXIT:-0}"; fi\n`);
  chmodSync(join(dir, "gh"), 0o755);
  const temp = join(dir, "runner-temp");
  mkdirSync(temp);
  if (env.CHECK_OUTPUT !== undefined) writeFileSync(join(temp, "dead-letters.txt"), env.CHECK_OUTPUT);
  const script = join(dir, "step.sh");
  writeFileSync(script, step.run!);
  const files = { GITHUB_OUTPUT: join(dir, "output"), GITHUB_STEP_SUMMARY: join(dir, "summary") };
  for (const file of Object.values(files)) writeFileSync(file, "");
  const r = spawnSync("bash", ["--noprofile", "--norc", "-eo", "pipefail", script], {
    env: { PATH: `${dir}:${process.env.PATH}`, RUNNER_TEMP: temp, ...files, ...env },
    encoding: "utf8",
  });
  const read = (f: string) => readFileSync(f, "utf8");
  const recorded = read(calls).split("\n").filter(Boolean).map((l) => l.replace(/^login ?/, ""));
  return {
    status: r.status,
    stdout: r.stdout,
    output: read(files.GITHUB_OUTPUT),
    summary: read(files.GITHUB_STEP_SUMMARY),
    calls: recorded,
    npm: read(npmCalls).split("\n").filter(Boolean),
    gh: read(ghCalls).split("\0").filter(Boolean),
    temp: (name: string) => read(join(temp, name)),
  };
}
