// `npm run tenants` end to end: --remote against a stateful fake of the Cloudflare KV
// API on loopback (through the official SDK), --local against the Miniflare state that
// the Worker itself then reads (a created key works, a disabled one is refused).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLocalProxy } from "../../../workers/llm-proxy/local/miniflare.ts";
import { FakeAnthropic } from "../../../workers/llm-proxy/test/fake-anthropic.ts";
import { runTenants, TENANT_EXIT } from "./cli.ts";
import { FakeCloudflare } from "../../../test/fakes/cloudflare-kv-tenants-api.ts";
import { RATE_LIMITED } from "../../../test/support/account-rate-limit.ts";
import { LoopbackServer } from "../../../test/support/loopback.ts";

const root = resolve(import.meta.dirname, "../../..");

async function run(argv: string[], env: NodeJS.ProcessEnv = {}) {
  let out = "";
  let err = "";
  const code = await runTenants(argv, { out: (s) => (out += s), err: (s) => (err += s), env, root });
  return { code, out, err };
}

describe("tenants --remote (Cloudflare API fake)", () => {
  const token = "cf-test-token-" + Math.random().toString(36).slice(2);
  const cf = new FakeCloudflare(token, "acc123", "ns456");
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    await cf.start();
    env = { CLOUDFLARE_API_TOKEN: token, CLOUDFLARE_ACCOUNT_ID: "acc123", EDGEFLEET_TENANTS_NAMESPACE_ID: "ns456", CLOUDFLARE_API_BASE_URL: cf.url };
  });
  afterAll(() => cf.stop());

  it("creates keys (printed once, stored as hashes), lists across pages, disables with a dry run first", async () => {
    const created = [];
    for (const name of ["alpha", "beta", "gamma"]) {
      const r = await run(["create", "--remote", "--name", name, "--rate", "120", "--burst", "20", "--json"], env);
      expect(r.code).toBe(TENANT_EXIT.ok);
      created.push(JSON.parse(r.out) as { key: string; tenant: { id: string; keyHash: string } });
    }
    // Stored under the hash, and the key itself is nowhere in the store.
    const stored = JSON.stringify([...cf.store.entries()]);
    for (const c of created) {
      expect(c.key).toMatch(/^efk_[A-Za-z0-9_-]{43}$/);
      expect(cf.store.has(`key:${c.tenant.keyHash}`)).toBe(true);
      expect(stored).not.toContain(c.key);
    }
    expect(cf.requests.every((q) => q.authorization === `Bearer ${token}`)).toBe(true);

    const list = await run(["list", "--remote", "--json"], env);
    expect(list.code).toBe(0);
    const rows = JSON.parse(list.out) as { id: string; name: string; ratePerMinute: number; burst: number; enabled: boolean }[];
    expect(rows.map((r) => r.name).sort()).toEqual(["alpha", "beta", "gamma"]); // 3 keys over 2 pages
    for (const c of created) expect(list.out).not.toContain(c.key);

    const id = created[1]!.tenant.id;
    const dry = await run(["disable", "--remote", id], env);
    expect(dry.code).toBe(0);
    expect(dry.out).toContain("would disable 1 key(s)");
    expect(JSON.parse(cf.store.get(`key:${created[1]!.tenant.keyHash}`)!.value).enabled).toBe(true);

    const real = await run(["disable", "--remote", id, "--yes"], env);
    expect(real.code).toBe(0);
    expect(JSON.parse(cf.store.get(`key:${created[1]!.tenant.keyHash}`)!.value).enabled).toBe(false);
    expect((cf.store.get(`key:${created[1]!.tenant.keyHash}`)!.metadata as { enabled: boolean }).enabled).toBe(false);
    expect(JSON.parse(cf.store.get(`key:${created[0]!.tenant.keyHash}`)!.value).enabled).toBe(true);

    const again = await run(["disable", "--remote", id, "--yes", "--json"], env);
    expect(JSON.parse(again.out)).toMatchObject({ dryRun: false, disabled: [], alreadyDisabled: 1 });
  });

  it("create --id: refused for a disabled or unknown tenant unless --reenable, which keeps its name and limits", async () => {
    const made = await run(["create", "--remote", "--name", "orig", "--rate", "120", "--burst", "20", "--input-tokens-per-minute", "40000", "--output-tokens-per-minute", "8000", "--json"], env);
    expect(made.code).toBe(TENANT_EXIT.ok);
    const { tenant } = JSON.parse(made.out) as { tenant: { id: string; inputTokensPerMinute: number; outputTokensPerMinute: number } };
    expect(tenant).toMatchObject({ inputTokensPerMinute: 40000, outputTokensPerMinute: 8000 });
    // A second key of an enabled tenant takes the tenant's name and limits...
    const second = await run(["create", "--remote", "--id", tenant.id, "--json"], env);
    expect(second.code).toBe(TENANT_EXIT.ok);
    expect(JSON.parse(second.out).tenant).toMatchObject({ id: tenant.id, name: "orig", ratePerMinute: 120, burst: 20, inputTokensPerMinute: 40000, outputTokensPerMinute: 8000 });
    // ...and refuses other ones (that is `tenants limits`).
    const other = await run(["create", "--remote", "--id", tenant.id, "--name", "renamed", "--rate", "12000"], env);
    expect(other.code).toBe(TENANT_EXIT.usage);
    expect(other.err).toContain("tenants limits");

    expect((await run(["disable", "--remote", tenant.id, "--yes"], env)).code).toBe(0);
    // The tenant-level marker is written (auth reads it).
    expect(JSON.parse(cf.store.get(`tenant:${tenant.id}`)!.value)).toMatchObject({ id: tenant.id, disabled: true });
    const before = cf.store.size;
    const refused = await run(["create", "--remote", "--id", tenant.id, "--name", "orig", "--rate", "12000"], env);
    expect(refused.code).toBe(TENANT_EXIT.refused);
    expect(refused.err).toContain(`tenant ${tenant.id} is disabled; pass --reenable`);
    expect(cf.store.size).toBe(before);
    const unknown = await run(["create", "--remote", "--id", "t_00000000000000ee", "--name", "ghost"], env);
    expect(unknown.code).toBe(TENANT_EXIT.notFound);
    expect(cf.store.size).toBe(before);

    const back = await run(["create", "--remote", "--id", tenant.id, "--reenable", "--json"], env);
    expect(back.code).toBe(TENANT_EXIT.ok);
    expect(JSON.parse(back.out).tenant).toMatchObject({ name: "orig", ratePerMinute: 120, burst: 20, inputTokensPerMinute: 40000, enabled: true });
    expect(JSON.parse(cf.store.get(`tenant:${tenant.id}`)!.value)).toMatchObject({ disabled: false });
  });

  it("limits: sets requests and token limits on every key of a tenant, dry run first", async () => {
    const made = JSON.parse((await run(["create", "--remote", "--name", "lim", "--json"], env)).out) as { tenant: { id: string; keyHash: string } };
    const id = made.tenant.id;
    await run(["create", "--remote", "--id", id], env);
    const dry = await run(["limits", "--remote", id, "--input-tokens-per-minute", "50000", "--output-tokens-per-minute", "10000"], env);
    expect(dry.code).toBe(0);
    expect(dry.out).toContain("would set");
    expect(dry.out).toContain("input tokens/min -, output tokens/min -, daily budget -, monthly budget - -> 60/min, burst 10, input tokens/min 50000, output tokens/min 10000, daily budget -");
    expect(JSON.parse(cf.store.get(`key:${made.tenant.keyHash}`)!.value).inputTokensPerMinute).toBeUndefined();
    const real = await run(["limits", "--remote", id, "--input-tokens-per-minute", "50000", "--output-tokens-per-minute", "10000", "--yes", "--json"], env);
    expect(JSON.parse(real.out)).toMatchObject({ dryRun: false, keys: 2, after: { inputTokensPerMinute: 50000, outputTokensPerMinute: 10000, ratePerMinute: 60 } });
    const rows = (JSON.parse((await run(["list", "--remote", "--json"], env)).out) as { id: string; inputTokensPerMinute?: number }[]).filter((r) => r.id === id);
    expect(rows.map((r) => r.inputTokensPerMinute)).toEqual([50000, 50000]);
    expect((await run(["list", "--remote"], env)).out).toContain("in tok/min");
    // 0 removes a limit; bad values change nothing.
    await run(["limits", "--remote", id, "--input-tokens-per-minute", "0", "--yes"], env);
    expect(JSON.parse(cf.store.get(`key:${made.tenant.keyHash}`)!.value).inputTokensPerMinute).toBeUndefined();
    const bad = await run(["limits", "--remote", id, "--output-tokens-per-minute", "1.5", "--yes"], env);
    expect(bad.code).toBe(TENANT_EXIT.usage);
    expect(bad.err).toContain("--output-tokens-per-minute");
    // An empty value (a script's unset variable), hex or an exponent is refused, never read
    // as 0 ("no limit"): the limit set above stays.
    for (const v of ["", " ", "0x10", "1e3", "-5"]) {
      const empty = await run(["limits", "--remote", id, "--output-tokens-per-minute", v, "--yes"], env);
      expect(empty.code, JSON.stringify(v)).toBe(TENANT_EXIT.usage);
    }
    expect(JSON.parse(cf.store.get(`key:${made.tenant.keyHash}`)!.value).outputTokensPerMinute).toBe(10000);
    // A change says how long the Worker may take to see it, and that the listing lags.
    expect(real.err + (await run(["limits", "--remote", id, "--rate", "60", "--yes"], env)).out).toMatch(/KV's propagation[\s\S]*up to 60 s behind/);
    expect((await run(["limits", "--remote", "t_00000000000000ff", "--rate", "5", "--yes"], env)).code).toBe(TENANT_EXIT.notFound);
  });

  it("limits: sets and clears spend budgets in dollars, parsed to micro-dollars as text; bad amounts change nothing", async () => {
    const made = JSON.parse((await run(["create", "--remote", "--name", "spender", "--daily-budget", "12.50", "--json"], env)).out) as { tenant: { id: string; keyHash: string; dailyBudgetMicros?: number } };
    expect(made.tenant.dailyBudgetMicros).toBe(12_500_000);
    const id = made.tenant.id;
    await run(["create", "--remote", "--id", id], env); // a second key takes the budget too
    const record = (hash: string) => JSON.parse(cf.store.get(`key:${hash}`)!.value) as { dailyBudgetMicros?: number; monthlyBudgetMicros?: number };
    const dry = await run(["limits", "--remote", id, "--monthly-budget", "0.000001"], env);
    expect(dry.code).toBe(0);
    expect(dry.out).toContain("daily budget $12.500000, monthly budget - -> 60/min, burst 10, input tokens/min -, output tokens/min -, daily budget $12.500000, monthly budget $0.000001");
    expect(record(made.tenant.keyHash).monthlyBudgetMicros).toBeUndefined();
    // 0.1 + 0.2 as text: exactly 300,000 micro-dollars (no float ever holds it).
    const real = await run(["limits", "--remote", id, "--monthly-budget", "0.3", "--daily-budget", "0.1", "--yes", "--json"], env);
    expect(JSON.parse(real.out)).toMatchObject({ keys: 2, after: { dailyBudgetMicros: 100_000, monthlyBudgetMicros: 300_000 } });
    const rows = (JSON.parse((await run(["list", "--remote", "--json"], env)).out) as { id: string; dailyBudgetMicros?: number; monthlyBudgetMicros?: number }[]).filter((r) => r.id === id);
    expect(rows.map((r) => [r.dailyBudgetMicros, r.monthlyBudgetMicros])).toEqual([[100_000, 300_000], [100_000, 300_000]]);
    expect((await run(["list", "--remote"], env)).out).toMatch(/budget\/day.*budget\/month[\s\S]*\$0\.100000.*\$0\.300000/);
    // 'none' clears one budget and leaves the other.
    expect((await run(["limits", "--remote", id, "--daily-budget", "none", "--yes"], env)).code).toBe(0);
    expect(record(made.tenant.keyHash)).toMatchObject({ monthlyBudgetMicros: 300_000 });
    expect(record(made.tenant.keyHash).dailyBudgetMicros).toBeUndefined();
    // Bad amounts: exit 2, the flag named, nothing written.
    const before = JSON.stringify([...cf.store.entries()]);
    for (const [flag, v, msg] of [
      ["--daily-budget", "12.5.0", "is not an amount in dollars"],
      ["--daily-budget", "1e3", "is not an amount in dollars"],
      ["--daily-budget", "-5", "is not an amount in dollars"],
      ["--monthly-budget", "0.0000001", "is not an amount in dollars"],
      ["--monthly-budget", "1234567890", "is not an amount in dollars"],
      ["--daily-budget", "0", "a budget must be more than $0"],
    ] as const) {
      const bad = await run(["limits", "--remote", id, flag, v, "--yes"], env);
      expect(bad.code, `${flag} ${v}`).toBe(TENANT_EXIT.usage);
      expect(bad.err).toContain(`${flag}: `);
      expect(bad.err).toContain(msg);
    }
    expect(JSON.stringify([...cf.store.entries()])).toBe(before);
  });

  it("archive: opts every key of a tenant in or out, dry run first; a new key keeps it; bad input changes nothing", async () => {
    const made = JSON.parse((await run(["create", "--remote", "--name", "arch", "--json"], env)).out) as { tenant: { id: string; keyHash: string } };
    const id = made.tenant.id;
    expect(made.tenant).not.toHaveProperty("archive");
    const stored = () => JSON.parse(cf.store.get(`key:${made.tenant.keyHash}`)!.value) as { archive?: boolean };
    const dry = await run(["archive", "--remote", id, "on"], env);
    expect(dry.code).toBe(TENANT_EXIT.ok);
    expect(dry.out).toContain(`would set ${id}'s archive off -> on on 1 of 1 key(s)`);
    expect(dry.out).toContain("dry run");
    expect(stored().archive).toBeUndefined();
    const on = await run(["archive", "--remote", id, "on", "--yes", "--json"], env);
    expect(JSON.parse(on.out)).toMatchObject({ dryRun: false, tenant: id, before: false, after: true, changed: 1, keys: 1 });
    expect(stored().archive).toBe(true);
    expect((cf.store.get(`key:${made.tenant.keyHash}`)!.metadata as { archive?: boolean }).archive).toBe(true);
    // A second key (rotation) is archived like the first.
    const second = JSON.parse((await run(["create", "--remote", "--id", id, "--json"], env)).out) as { tenant: { archive?: boolean } };
    expect(second.tenant.archive).toBe(true);
    const list = await run(["list", "--remote"], env);
    expect(list.out).toContain("archive");
    // Off removes the flag from every key.
    const off = await run(["archive", "--remote", id, "off", "--yes", "--json"], env);
    expect(JSON.parse(off.out)).toMatchObject({ before: true, after: false, changed: 2, keys: 2 });
    expect(stored().archive).toBeUndefined();
    const before = JSON.stringify([...cf.store.entries()]);
    const bad = await run(["archive", "--remote", id, "yes", "--yes"], env);
    expect(bad.code).toBe(TENANT_EXIT.usage);
    expect(bad.err).toContain("expected on or off, got 'yes'");
    expect((await run(["archive", "--remote", "t_00000000000000fe", "on", "--yes"], env)).code).toBe(TENANT_EXIT.notFound);
    expect(JSON.stringify([...cf.store.entries()])).toBe(before);
  });

  it("one value that is not JSON stops no command: list and an emergency disable still work, the key is named", async () => {
    const made = JSON.parse((await run(["create", "--remote", "--name", "victim", "--json"], env)).out) as { tenant: { id: string; keyHash: string } };
    // Sorted first in the listing, no metadata: every command reads its value.
    cf.store.set("key:0bad\u001b[2J", { value: "not json", metadata: null });
    try {
      const list = await run(["list", "--remote", "--json"], env);
      expect(list.code).toBe(TENANT_EXIT.ok);
      expect((JSON.parse(list.out) as { id: string }[]).map((r) => r.id)).toContain(made.tenant.id);
      expect(list.err).toContain("tenants: warning: key:0bad\\u001b[2J skipped: its value is not JSON, so not a tenant record (KV namespace ns456");
      expect(list.err).not.toContain("\u001b");
      const off = await run(["disable", "--remote", made.tenant.id, "--yes"], env);
      expect(off.code).toBe(TENANT_EXIT.ok);
      expect(off.err).toContain("key:0bad\\u001b[2J skipped");
      expect(JSON.parse(cf.store.get(`key:${made.tenant.keyHash}`)!.value).enabled).toBe(false);
      for (const argv of [["limits", made.tenant.id, "--rate", "5"], ["archive", made.tenant.id, "on"], ["create", "--id", made.tenant.id, "--reenable"]]) {
        expect((await run([argv[0]!, "--remote", ...argv.slice(1)], env)).code, argv.join(" ")).toBe(TENANT_EXIT.ok);
      }
    } finally {
      cf.store.delete("key:0bad\u001b[2J");
    }
  });

  it("names: a control or bidirectional character is refused in a new name (exit 2, nothing written); one stored earlier is escaped in every output", async () => {
    const before = cf.store.size;
    for (const name of ["evil\u001b[2J", "\u202eemca", "a\u0085b", "line\u2028break"]) {
      const r = await run(["create", "--remote", "--name", name], env);
      expect(r.code, JSON.stringify(name)).toBe(TENANT_EXIT.usage);
      expect(r.err).toContain("--name: must not contain control or bidirectional characters");
    }
    expect(cf.store.size).toBe(before);
    // A record written before names were checked (or by hand).
    const name = "evil\u001b]0;pwned\u0007\u202e\u2028\u0085end";
    const rec = { id: "t_00000000000000aa", name, ratePerMinute: 60, burst: 10, enabled: true, keyHash: "aa".repeat(32), createdAt: "2026-01-01T00:00:00.000Z" };
    cf.store.set(`key:${rec.keyHash}`, { value: JSON.stringify(rec), metadata: rec });
    const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e\u2028]/;
    const table = await run(["list", "--remote"], env);
    expect(table.out).not.toMatch(RAW);
    expect(table.out).toContain("evil\\u001b]0;pwned\\u0007\\u202e\\u2028\\u0085end");
    const json = await run(["list", "--remote", "--json"], env);
    expect(json.out).not.toMatch(RAW);
    expect((JSON.parse(json.out) as { id: string; name: string }[]).find((r) => r.id === rec.id)!.name).toBe(name);
    // A new key of that tenant takes its name: the message escapes it, --json too.
    const second = await run(["create", "--remote", "--id", rec.id], env);
    expect(second.code).toBe(TENANT_EXIT.ok);
    expect(second.out).not.toMatch(RAW);
    expect(second.out).toContain("(evil\\u001b]0;pwned");
    const third = await run(["create", "--remote", "--id", rec.id, "--json"], env);
    expect(third.out).not.toMatch(RAW);
    expect(JSON.parse(third.out).tenant.name).toBe(name);
  });

  it("takes the namespace id from a saved `pulumi stack output --json`, with clear errors", async () => {
    const dir = mkdtempSync(join(tmpdir(), "efp-stack-"));
    try {
      const { EDGEFLEET_TENANTS_NAMESPACE_ID: _, ...noNs } = env;
      const file = join(dir, "outputs.json");
      const ns = "0123456789abcdef0123456789abcdef";
      const other = new FakeCloudflare(env.CLOUDFLARE_API_TOKEN!, "acc123", ns);
      await other.start();
      try {
        writeFileSync(file, JSON.stringify({ zoneCount: 3, llmProxy: { tenantsNamespaceId: ns } }));
        const r = await run(["create", "--remote", "--name", "from-stack", "--stack-outputs", file, "--stack-output-key", "llmProxy.tenantsNamespaceId", "--api-base", other.url, "--json"], noNs);
        expect(r.code).toBe(TENANT_EXIT.ok);
        expect(other.store.size).toBe(1);
        const missing = await run(["list", "--remote", "--stack-outputs", file], noNs);
        expect(missing.code).toBe(TENANT_EXIT.usage);
        expect(missing.err).toContain("output 'tenantsNamespaceId' is missing (outputs: zoneCount, llmProxy)");
        writeFileSync(file, "Current stack outputs (2):");
        expect((await run(["list", "--remote", "--stack-outputs", file], noNs)).err).toContain("not JSON");
      } finally {
        await other.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("exit codes: unknown tenant 4, bad input 2 (nothing written), missing credentials 2, API refusal 1", async () => {
    expect((await run(["disable", "--remote", "t_0000000000000000", "--yes"], env)).code).toBe(TENANT_EXIT.notFound);
    const before = cf.store.size;
    const bad = await run(["create", "--remote", "--name", "x", "--rate", "-5"], env);
    expect(bad.code).toBe(TENANT_EXIT.usage);
    expect(bad.err).toContain("--rate");
    expect(cf.store.size).toBe(before);
    const noToken = await run(["list", "--remote"], { ...env, CLOUDFLARE_API_TOKEN: "" });
    expect(noToken.code).toBe(TENANT_EXIT.usage);
    expect(noToken.err).toContain("CLOUDFLARE_API_TOKEN");
    const wrong = await run(["list", "--remote"], { ...env, CLOUDFLARE_API_TOKEN: "wrong-token-value" });
    expect(wrong.code).toBe(TENANT_EXIT.failed);
    expect(wrong.err).toMatch(/403|Authentication error/);
    expect(wrong.err).not.toContain("wrong-token-value");
    expect((await run(["list"], env)).code).toBe(TENANT_EXIT.usage);
    expect((await run(["frobnicate"], env)).code).toBe(TENANT_EXIT.usage);
  });
});

describe("tenants --remote: how an API error is told", () => {
  const token = "cf-test-token-" + Math.random().toString(36).slice(2);
  // Every request answered with `answer`, in Cloudflare's v4 envelope.
  let answer: { status: number; headers?: Record<string, string>; error: { code: number; message: string } } = { status: 429, error: RATE_LIMITED };
  const api = new LoopbackServer((_req, _body, res) => {
    res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers });
    res.end(JSON.stringify({ success: false, errors: [answer.error], messages: [], result: null }));
  });
  const env = () => ({ CLOUDFLARE_API_TOKEN: token, CLOUDFLARE_ACCOUNT_ID: "acc123", EDGEFLEET_TENANTS_NAMESPACE_ID: "ns456", CLOUDFLARE_API_BASE_URL: `${api.url}/client/v4` });
  beforeAll(() => api.start());
  afterAll(() => api.stop());

  it("a 429 that asks to wait five minutes says how long, at once (exit 1)", async () => {
    answer = { status: 429, headers: { "retry-after": "300" }, error: RATE_LIMITED };
    const r = await run(["list", "--remote"], env());
    expect(r.code).toBe(TENANT_EXIT.failed);
    expect(r.err).toBe(`tenants: the Cloudflare API answered 429: 971 ${RATE_LIMITED.message} (it asked to wait 300 s before trying again: the account's API rate limit)\n`);
    expect(r.out + r.err).not.toContain(token);
  });

  it("the API's text is escaped (it must not drive the terminal), the token never shown", async () => {
    answer = { status: 403, error: { code: 10000, message: `Authentication error for ${token} \u202e\u009b2J` } };
    const r = await run(["disable", "--remote", "t_0000000000000001", "--yes"], env());
    expect(r.code).toBe(TENANT_EXIT.failed);
    expect(r.err).toBe("tenants: the Cloudflare API answered 403: 10000 Authentication error for *** \\u202e\\u009b2J\n");
  });
});

describe("tenants --local, read by the Worker", () => {
  const dir = mkdtempSync(join(tmpdir(), "efp-tenants-"));
  const fake = new FakeAnthropic();
  beforeAll(() => fake.start());
  afterAll(async () => {
    await fake.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a key created locally works in the Worker; once disabled it gets 401", async () => {
    const c = await run(["create", "--local", "--persist", dir, "--name", "local-app", "--json"]);
    expect(c.code).toBe(0);
    const { key, tenant } = JSON.parse(c.out) as { key: string; tenant: { id: string } };
    const call = async () => {
      const { mf, url } = await startLocalProxy({
        persistDir: dir,
        vars: { UPSTREAM_BASE_URL: fake.url },
        secrets: { ANTHROPIC_API_KEY: "sk-local-test" },
        onLog: () => {},
      });
      try {
        const r = await fetch(new URL("/v1/messages", url), { method: "POST", headers: { "x-api-key": key, "anthropic-version": "2023-06-01" }, body: '{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}' });
        await r.text();
        return r.status;
      } finally {
        await mf.dispose();
      }
    };
    expect(await call()).toBe(200);
    expect((await run(["disable", "--local", "--persist", dir, tenant.id, "--yes"])).code).toBe(0);
    expect(await call()).toBe(401);
    const list = await run(["list", "--local", "--persist", dir]);
    expect(list.out).toContain("local-app");
    expect(list.out).not.toContain(key);
  });
});

/** Runs an entry point with its standard output closed before it writes, as
 *  `npm run tenants -- list | head -0` does. */
function withClosedStdout(argv: string[]): Promise<{ code: number | null; err: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [join(root, "scripts/tenants.ts"), ...argv], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.destroy();
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d));
    child.on("close", (code) => done({ code, err }));
  });
}

describe("scripts/tenants.ts with a closed pipe", () => {
  it("exits 0 without a stack trace when the reader leaves early (it died of an unhandled EPIPE)", async () => {
    expect(await withClosedStdout(["--help"])).toEqual({ code: 0, err: "" });
  });

  it("create: exits 1 and says the key, shown once, may be lost", async () => {
    const dir = mkdtempSync(join(tmpdir(), "efp-epipe-"));
    try {
      const r = await withClosedStdout(["create", "--local", "--persist", dir, "--name", "piped"]);
      expect(r.code).toBe(TENANT_EXIT.failed);
      expect(r.err).toMatch(/^tenants: standard output was closed early: the new key \(shown only once\) may not have been printed; `tenants list` shows the tenant/);
      expect(r.err).not.toContain("EPIPE");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
