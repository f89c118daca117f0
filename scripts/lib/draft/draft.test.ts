// `npm run draft` end to end against a FAKE Messages API on loopback, with the real
// @anthropic-ai/sdk as the client and a scratch git repository as the operator's repo.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { FLEET, PROFILES } from "../../../test/support/inventory.ts";
import { startFakeMessagesApi, type FakeMessagesApi } from "../../../test/fakes/anthropic-messages-api.ts";
import { DRAFT_EXIT, runDraft } from "./draft.ts";

const ZONES = `# yaml-language-server: $schema=./schema/zones.schema.json
# The draft test fleet. This comment must survive every edit.
zones:
  - name: ops.example
    id: a0000000000000000000000000000001
    profile: mail-fastmail
    tags: [ops]

  # --- shops ---------------------------------------------------------------
  - name: shop-one.example
    id: a0000000000000000000000000000002
    profile: web
    tags: [shop, legacy]   # kept web until the migration
    records:
      - { type: A, name: api, content: 192.0.2.10, proxied: true }
  - name: shop-two.example
    id: a0000000000000000000000000000003
    profile: web
    tags: [shop]

  # --- legacy campaigns ------------------------------------------------------
${Array.from({ length: 7 }, (_, i) => `  - name: campaign-${i}.example\n    id: a00000000000000000000000000001${i}0\n    profile: web\n    tags: [legacy]\n`).join("")}`;

let api: FakeMessagesApi;
let root: string;
let counter = 0;

function git(...args: string[]): string {
  return execFileSync("git", args, { cwd: root, encoding: "utf8" });
}

async function draft(args: string[], env: Record<string, string | undefined> = {}) {
  let out = "";
  let err = "";
  const code = await runDraft(args, {
    out: (s) => (out += s),
    err: (s) => (err += s),
    root,
    env: { ANTHROPIC_API_KEY: "sk-ant-test-key", ANTHROPIC_BASE_URL: api.url, ...env },
    now: () => new Date(Date.UTC(2026, 10, 23, 10, 0, counter++)),
  });
  return { code, out, err };
}

const legacyToParked = {
  rationale: "The seven campaign zones and shop-one are tagged legacy; the request keeps the shops on web.",
  edits: [
    { op: "set_profile", zones: Array.from({ length: 7 }, (_, i) => `campaign-${i}.example`), profile: "parked" },
    { op: "add_tags", zones: ["shop-two.example"], tags: ["reviewed"] },
  ],
};

const smallChange = {
  rationale: "Tag shop-two as reviewed, verify shop-one, and leave campaign-0's ACME challenges alone.",
  edits: [
    { op: "add_tags", zones: ["shop-two.example"], tags: ["reviewed"] },
    { op: "add_record", zone: "shop-one.example", record: { type: "TXT", name: "@", content: "verify=abc" } },
    { op: "ignore_record", zone: "campaign-0.example", rule: { type: "TXT", name: "_acme-challenge" } },
  ],
};

beforeAll(async () => {
  api = await startFakeMessagesApi();
});
afterAll(async () => api.close());

beforeEach(() => {
  api.requests.length = 0;
  api.tokens(undefined);
  root = mkdtempSync(join(tmpdir(), "edgefleet-draft-"));
  mkdirSync(join(root, "fleet"));
  writeFileSync(join(root, "fleet", "fleet.yaml"), `${FLEET}guard:\n  maxFleetShare: 0.9\n`);
  writeFileSync(join(root, "fleet", "profiles.yaml"), PROFILES);
  writeFileSync(join(root, "fleet", "zones.yaml"), ZONES);
  git("init", "-q", "-b", "main");
  git("add", ".");
  git("-c", "user.name=t", "-c", "user.email=t@t.example", "commit", "-q", "-m", "base");
});

function nothingWritten(head: string) {
  expect(git("rev-parse", "HEAD").trim()).toBe(head);
  expect(git("branch", "--list").trim()).toBe("* main");
  expect(git("status", "--porcelain")).toBe("");
  expect(existsSync(join(root, "drafts"))).toBe(false);
}

describe("npm run draft", () => {
  it("without ANTHROPIC_API_KEY says so, exits 2 and calls nothing", async () => {
    const r = await draft(["move legacy zones to parked"], { ANTHROPIC_API_KEY: undefined });
    expect(r.code).toBe(DRAFT_EXIT.usage);
    expect(r.err).toContain("ANTHROPIC_API_KEY is not set");
    expect(api.requests).toHaveLength(0);
  });

  it("drafts a valid change: a patch that applies, keeps comments and formatting, and the plan diff", async () => {
    api.script([{ kind: "tool", input: smallChange }]);
    const head = git("rev-parse", "HEAD").trim();
    const r = await draft(["tag shop-two as reviewed, add verify=abc to shop-one, leave campaign-0's acme challenges alone"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(DRAFT_EXIT.ok);
    // The current branch, index and working tree are untouched.
    expect(git("rev-parse", "HEAD").trim()).toBe(head);
    expect(git("status", "--porcelain")).toBe("?? drafts/\n");
    const [patchName] = readdirSync(join(root, "drafts"));
    expect(patchName).toBe("20261123-100000Z-tag-shop-two-as-reviewed-add-verify-abc.patch");
    const patch = readFileSync(join(root, "drafts", patchName!), "utf8");
    // Only the changed lines, in the file's own style.
    const changed = patch.split("\n").filter((l) => /^[-+](?![-+])/.test(l));
    expect(changed).toEqual([
      '+      - { type: TXT, name: "@", content: verify=abc }',
      "-    tags: [shop]",
      "+    tags: [shop, reviewed]",
      "+    ignore:",
      "+      - { type: TXT, name: _acme-challenge }",
    ]);
    expect(patch).toContain("Subject: [PATCH] Draft: tag shop-two as reviewed");
    expect(patch).toContain(smallChange.rationale);
    // It applies to the repository as it is, and the result keeps every comment.
    git("apply", "--check", join("drafts", patchName!));
    git("apply", join("drafts", patchName!));
    const after = readFileSync(join(root, "fleet", "zones.yaml"), "utf8");
    for (const line of ZONES.split("\n").filter((l) => l.includes("#"))) expect(after).toContain(line);
    expect(r.out).toContain(`Rationale: ${smallChange.rationale}`);
    expect(r.out).toContain("plan: +1 ~0 -0 records in 1 of 10 zones");
    expect(r.out).toContain("Safety guard: ok");
  });

  it("keeps the request's prefix byte-identical across drafts, with cache_control, and counts tokens first", async () => {
    api.script([{ kind: "tool", input: smallChange }]);
    await draft(["move legacy zones to parked"]);
    await draft(["tag shop-two as reviewed and park the campaigns"]);
    const creates = api.requests.filter((q) => q.path === "/v1/messages");
    const counts = api.requests.filter((q) => q.path === "/v1/messages/count_tokens");
    expect(creates).toHaveLength(2);
    expect(counts).toHaveLength(2);
    expect(api.requests.map((q) => q.path)).toEqual(["/v1/messages/count_tokens", "/v1/messages", "/v1/messages/count_tokens", "/v1/messages"]);
    const prefix = (body: string) => body.slice(0, body.indexOf('"messages":'));
    expect(prefix(creates[0]!.body).length).toBeGreaterThan(1000);
    expect(prefix(creates[1]!.body)).toBe(prefix(creates[0]!.body));
    expect(creates[0]!.body).not.toBe(creates[1]!.body);
    const body = JSON.parse(creates[0]!.body);
    expect(body.system.at(-1).cache_control).toEqual({ type: "ephemeral" });
    expect(body.system.at(-1).text).toContain("# The draft test fleet. This comment must survive every edit.");
    expect(body.tool_choice).toEqual({ type: "tool", name: "propose_inventory_edits" });
    expect(body.tools[0].input_schema.properties.edits.items.oneOf.length).toBe(8);
    const key = creates[0]!.headers["x-api-key"] ?? creates[0]!.headers.authorization?.replace(/^Bearer /, "");
    expect(key).toBe("sk-ant-test-key");
    expect(creates[0]!.headers["anthropic-version"]).toBeDefined();
  });

  it("commits to a new branch with --branch, never to the current one", async () => {
    api.script([{ kind: "tool", input: legacyToParked }]);
    const head = git("rev-parse", "HEAD").trim();
    const r = await draft(["park the legacy campaigns", "--branch", "draft/park-legacy", "--json", "--force"]);
    expect(r.code).toBe(DRAFT_EXIT.ok);
    const j = JSON.parse(r.out);
    expect(git("rev-parse", "draft/park-legacy").trim()).toBe(j.commit);
    expect(git("rev-parse", "draft/park-legacy^").trim()).toBe(head);
    expect(git("rev-parse", "HEAD").trim()).toBe(head);
    expect(git("symbolic-ref", "--short", "HEAD").trim()).toBe("main");
    expect(git("status", "--porcelain")).toBe("");
    expect(git("show", "draft/park-legacy:fleet/zones.yaml").match(/profile: parked/g)).toHaveLength(7);
    // Seven zones change posture; the tag on shop-two changes no resource.
    expect(j.plan.totals.zonesTouched).toBe(7);
    expect(j.zonesTouched).toHaveLength(8);
    // The same branch name again is refused.
    const again = await draft(["park the legacy campaigns", "--branch", "draft/park-legacy", "--force"]);
    expect(again.code).toBe(DRAFT_EXIT.usage);
    expect(again.err).toContain("branch 'draft/park-legacy' already exists");
  });

  it("refuses an answer that is not a valid edit, and writes nothing", async () => {
    api.script([{ kind: "tool", input: { rationale: "x", edits: [{ op: "run_shell", command: "rm -rf /" }] } }]);
    const head = git("rev-parse", "HEAD").trim();
    const r = await draft(["do something"]);
    expect(r.code).toBe(DRAFT_EXIT.refused);
    expect(r.err).toContain("the answer is not a valid edit");
    nothingWritten(head);
  });

  it("refuses an answer without the tool call", async () => {
    api.script([{ kind: "text", text: "I would rather chat." }]);
    const head = git("rev-parse", "HEAD").trim();
    const r = await draft(["do something"]);
    expect(r.code).toBe(DRAFT_EXIT.refused);
    expect(r.err).toContain("without calling propose_inventory_edits");
    nothingWritten(head);
  });

  it("refuses edits that name unknown zones, with the reasons", async () => {
    api.script([{ kind: "tool", input: { rationale: "x", edits: [{ op: "set_profile", zones: ["ghost.example", "shop-two.example"], profile: "parked" }] } }]);
    const head = git("rev-parse", "HEAD").trim();
    const r = await draft(["park the ghost"]);
    expect(r.code).toBe(DRAFT_EXIT.refused);
    expect(r.err).toContain("edit 1 (set_profile): unknown zone 'ghost.example'");
    nothingWritten(head);
  });

  it("refuses edits whose result fails validation, located in the drafted file", async () => {
    api.script([
      { kind: "tool", input: { rationale: "x", edits: [{ op: "add_record", zone: "campaign-1.example", record: { type: "TXT", name: "_dmarc", content: "v=DMARC1; p=none" } }] } },
    ]);
    const head = git("rev-parse", "HEAD").trim();
    const r = await draft(["relax dmarc on campaign-1"]);
    expect(r.code).toBe(DRAFT_EXIT.refused);
    expect(r.err).toMatch(/fleet\/zones\.yaml \(draft\):\d+:\d+: zones\[4\]\.records\[0\]: TXT _dmarc collides with the managed posture record/);
    nothingWritten(head);
  });

  it("refuses a change that rewrites most of some zones (a profile change) until forced after review", async () => {
    api.script([{ kind: "tool", input: legacyToParked }]);
    const head = git("rev-parse", "HEAD").trim();
    const r = await draft(["move every zone tagged legacy to parked, except the shop zones"]);
    expect(r.code).toBe(DRAFT_EXIT.guard);
    expect(r.err).toMatch(/campaign-0\.example: rewrites \d+ of its \d+ managed records/);
    nothingWritten(head);
    const forced = await draft(["move every zone tagged legacy to parked, except the shop zones", "--force"]);
    expect(forced.code).toBe(DRAFT_EXIT.ok);
    expect(forced.out).toContain("Safety guard: forced past 7 violation(s)");
    const patch = readFileSync(join(root, "drafts", readdirSync(join(root, "drafts"))[0]!), "utf8");
    const changed = patch.split("\n").filter((l) => /^[-+](?![-+])/.test(l));
    expect(changed.filter((l) => l.startsWith("-")).sort()).toEqual([...Array(7).fill("-    profile: web"), "-    tags: [shop]"].sort());
    expect(changed.filter((l) => l.startsWith("+")).sort()).toEqual([...Array(7).fill("+    profile: parked"), "+    tags: [shop, reviewed]"].sort());
  });

  it("refuses an edit that would remove most of the fleet unless forced", async () => {
    const all = ["shop-one.example", "shop-two.example", ...Array.from({ length: 7 }, (_, i) => `campaign-${i}.example`)];
    api.script([{ kind: "tool", input: { rationale: "clean up", edits: [{ op: "remove_zone", zones: all }] } }]);
    const head = git("rev-parse", "HEAD").trim();
    const r = await draft(["remove everything but ops"]);
    expect(r.code).toBe(DRAFT_EXIT.guard);
    expect(r.err).toContain("refused by the safety guard");
    expect(r.err).toContain("shop-one.example: removes the zone and all");
    nothingWritten(head);
    const forced = await draft(["remove everything but ops", "--force", "--json"]);
    expect(forced.code).toBe(DRAFT_EXIT.ok);
    expect(JSON.parse(forced.out).guard.forced).toBe(true);
  });

  it("retries a 529 and then succeeds", async () => {
    api.script([
      { kind: "error", status: 529, type: "overloaded_error", message: "Overloaded", retryAfterMs: 10 },
      { kind: "tool", input: smallChange },
    ]);
    const r = await draft(["park the legacy campaigns", "--json"]);
    expect(r.code).toBe(DRAFT_EXIT.ok);
    expect(api.requests.filter((q) => q.path === "/v1/messages")).toHaveLength(2);
  });

  it("gives up after the retries with exit 4 and writes nothing", async () => {
    api.script([{ kind: "error", status: 529, type: "overloaded_error", message: "Overloaded", retryAfterMs: 5 }]);
    const head = git("rev-parse", "HEAD").trim();
    const r = await draft(["park", "--max-retries", "1"]);
    expect(r.code).toBe(DRAFT_EXIT.api);
    expect(r.err).toContain("HTTP 529, overloaded_error");
    expect(api.requests.filter((q) => q.path === "/v1/messages")).toHaveLength(2);
    nothingWritten(head);
  });

  it("refuses a request over the token budget before calling the model", async () => {
    api.tokens(200_001);
    const r = await draft(["park", "--budget", "200000"]);
    expect(r.code).toBe(DRAFT_EXIT.api);
    expect(r.err).toContain("200001 input tokens, over the budget of 200000");
    expect(api.requests.map((q) => q.path)).toEqual(["/v1/messages/count_tokens"]);
  });

  it("refuses to draft over uncommitted inventory changes", async () => {
    writeFileSync(join(root, "fleet", "zones.yaml"), `${ZONES}  - name: local.example\n    profile: parked\n`);
    const r = await draft(["park"]);
    expect(r.code).toBe(DRAFT_EXIT.usage);
    expect(r.err).toContain("commit or stash your changes to fleet/zones.yaml first");
    expect(api.requests).toHaveLength(0);
  });

  it("never puts the API key in its output", async () => {
    api.script([{ kind: "tool", input: smallChange }]);
    const r = await draft(["park", "--json"]);
    const failed = await draft(["park", "--max-retries", "0"], { ANTHROPIC_BASE_URL: "http://127.0.0.1:9" });
    for (const text of [r.out, r.err, failed.out, failed.err]) expect(text).not.toContain("sk-ant-test-key");
  });

  describe("hostile and broken answers (issue 15 item 9)", () => {
    it("refuses a tag that would smuggle a zone into add_zone, by the inventory's own tag schema", async () => {
      // Before: tags were z.string() and written raw inside [...], so this added evil.example.
      const tag = "x]\n  - name: evil.example\n    profile: web\n    tags: [y";
      api.script([{ kind: "tool", input: { rationale: "r", edits: [{ op: "add_zone", name: "new.example", profile: "parked", tags: [tag] }] } }]);
      const head = git("rev-parse", "HEAD").trim();
      const r = await draft(["add new.example"]);
      expect(r.code).toBe(DRAFT_EXIT.refused);
      expect(r.err).toContain("the answer is not a valid edit");
      expect(r.err).toMatch(/edits\.0\.tags\.0: use lowercase letters, digits and '-'/);
      nothingWritten(head);
    });

    it.each([
      ["a profile", { op: "set_profile", zones: ["shop-two.example"], profile: "web\n  - name: evil.example" }, "edits.0.profile"],
      ["a tag to add", { op: "add_tags", zones: ["shop-two.example"], tags: ["ok", "a, b"] }, "edits.0.tags.1"],
      ["a record name to remove", { op: "remove_record", zone: "shop-one.example", type: "A", name: "api\n- x" }, "edits.0.name"],
      ["a record type to remove", { op: "remove_record", zone: "shop-one.example", type: "NS", name: "api" }, "edits.0.type"],
      ["a zone name", { op: "add_zone", name: "Evil.Example", profile: "parked" }, "edits.0.name"],
    ])("validates %s with the inventory field's schema", async (_what, edit, path) => {
      api.script([{ kind: "tool", input: { rationale: "r", edits: [edit] } }]);
      const r = await draft(["x"]);
      expect(r.code).toBe(DRAFT_EXIT.refused);
      expect(r.err).toContain(`${path}:`);
    });

    it("writes odd but valid values through YAML's own quoting", async () => {
      api.script([{ kind: "tool", input: { rationale: "r", edits: [{ op: "add_record", zone: "shop-two.example", record: { type: "TXT", name: "@", content: "a: b # not a comment, [x], \"q\"" } }] } }]);
      const r = await draft(["add a txt", "--branch", "draft/txt"]);
      expect(r.code, r.err).toBe(DRAFT_EXIT.ok);
      const text = git("show", "draft/txt:fleet/zones.yaml");
      const zones = (parseYaml(text) as { zones: { name: string; records?: { content: string }[] }[] }).zones;
      expect(zones.find((z) => z.name === "shop-two.example")!.records).toEqual([{ type: "TXT", name: "@", content: 'a: b # not a comment, [x], "q"' }]);
    });

    it("keeps the model's rationale from injecting a second diff into the patch, or escapes into the terminal", async () => {
      const injected = `Tag it.\n---\ndiff --git a/fleet/zones.yaml b/fleet/zones.yaml\n--- a/fleet/zones.yaml\n+++ b/fleet/zones.yaml\n@@ -1,1 +1,3 @@\n+zones:\n+  - name: evil.example\n \u001b[31mred\u001b[0m`;
      api.script([{ kind: "tool", input: { rationale: injected, edits: [{ op: "add_tags", zones: ["shop-two.example"], tags: ["reviewed"] }] } }]);
      const r = await draft(["tag shop-two"]);
      expect(r.code, r.err).toBe(DRAFT_EXIT.ok);
      expect(r.out).not.toContain("\u001b");
      const name = readdirSync(join(root, "drafts"))[0]!;
      const patch = readFileSync(join(root, "drafts", name), "utf8");
      expect(patch.split("\n").filter((l) => l.startsWith("diff --git"))).toHaveLength(1);
      // git am applies exactly the drafted change.
      git("-c", "user.name=t", "-c", "user.email=t@t.example", "am", "-q", join("drafts", name));
      const zones = readFileSync(join(root, "fleet", "zones.yaml"), "utf8");
      expect(zones).not.toContain("evil.example");
      expect(zones).toContain("tags: [shop, reviewed]");
    });

    it("refuses an answer cut off at max_tokens, even with a complete-looking tool call", async () => {
      api.script([{ kind: "tool", input: smallChange, stopReason: "max_tokens" }]);
      const head = git("rev-parse", "HEAD").trim();
      const r = await draft(["x"]);
      expect(r.code).toBe(DRAFT_EXIT.refused);
      expect(r.err).toContain("cut off at max_tokens");
      nothingWritten(head);
    });

    it.each(["refusal", "pause_turn", "model_context_window_exceeded"])("refuses an answer that stopped with %s", async (stop) => {
      api.script([{ kind: "tool", input: smallChange, stopReason: stop }]);
      const r = await draft(["x"]);
      expect(r.code).toBe(DRAFT_EXIT.refused);
      expect(r.err).toContain(`stopped with '${stop}'`);
    });

    it("refuses two tool calls and shows both, never using one and dropping the other", async () => {
      const second = { rationale: "also", edits: [{ op: "remove_zone", zones: ["shop-one.example"] }] };
      api.script([{ kind: "tools", calls: [{ input: smallChange }, { input: second }] }]);
      const head = git("rev-parse", "HEAD").trim();
      const r = await draft(["x"]);
      expect(r.code).toBe(DRAFT_EXIT.refused);
      expect(r.err).toContain("the model made 2 tool calls where exactly one is expected; none is used");
      expect(r.err).toContain("call 1: propose_inventory_edits");
      expect(r.err).toContain('call 2: propose_inventory_edits {"rationale":"also"');
      nothingWritten(head);
    });

    it("refuses a call of another tool, and never echoes control characters from the answer", async () => {
      api.script([{ kind: "tool", name: "run_shell\u001b]0;owned\u0007", input: { command: "id" } }]);
      const r = await draft(["x"]);
      expect(r.code).toBe(DRAFT_EXIT.refused);
      expect(r.err).toContain("called 'run_shell?]0;owned?'");
      expect(r.err).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
    });

    it.each([
      ["an HTML page with status 200", { kind: "raw", status: 200, contentType: "text/html", body: "<html>gateway</html>" }],
      ["JSON that is not a message", { kind: "raw", status: 200, contentType: "application/json", body: '{"hello":"world"}' }],
      ["invalid JSON", { kind: "raw", status: 200, contentType: "application/json", body: '{"type":"message","content":[' }],
      ["a body cut off mid-way", { kind: "truncated", input: smallChange, sendBytes: 60 }],
    ] as const)("exits 4 'API failed' with no stack trace for %s", async (_what, reply) => {
      api.script([reply as never]);
      const head = git("rev-parse", "HEAD").trim();
      const r = await draft(["x", "--max-retries", "0"]);
      expect(r.code).toBe(DRAFT_EXIT.api);
      expect(r.err).toMatch(/^draft: API failed: /);
      expect(r.err).not.toMatch(/\n\s+at /);
      expect(r.err.split("\n").filter(Boolean)).toHaveLength(1);
      nothingWritten(head);
    });

    it("exits 4 for a count_tokens answer that is not a count", async () => {
      api.tokens(-5);
      const r = await draft(["x"]);
      expect(r.code).toBe(DRAFT_EXIT.api);
      expect(r.err).toContain("API failed: count_tokens answered with something that is not a token count");
    });

    it("refuses an answer over the size cap without using it", async () => {
      api.script([{ kind: "huge", bytes: 2 * 1024 * 1024 }]);
      const head = git("rev-parse", "HEAD").trim();
      const r = await draft(["x"]);
      expect(r.code).toBe(DRAFT_EXIT.refused);
      expect(r.err).toContain("larger than 1048576 bytes; refused");
      nothingWritten(head);
    });

    it("refuses removing a zone that fleet/sites still serves", async () => {
      mkdirSync(join(root, "fleet", "sites", "www.shop-two.example"), { recursive: true });
      writeFileSync(join(root, "fleet", "sites", "www.shop-two.example", "index.html"), "<h1>shop</h1>");
      git("add", ".");
      git("-c", "user.name=t", "-c", "user.email=t@t.example", "commit", "-q", "-m", "site");
      api.script([{ kind: "tool", input: { rationale: "r", edits: [{ op: "remove_zone", zones: ["shop-two.example"] }] } }]);
      const head = git("rev-parse", "HEAD").trim();
      const r = await draft(["remove shop-two", "--force"]);
      expect(r.code).toBe(DRAFT_EXIT.refused);
      expect(r.err).toContain("the edits remove zones that fleet/sites still serves");
      expect(r.err).toContain("shop-two.example: fleet/sites/www.shop-two.example/");
      nothingWritten(head);
      // A zone without a site goes (forced past the guard, which refuses any removal).
      api.script([{ kind: "tool", input: { rationale: "r", edits: [{ op: "remove_zone", zones: ["campaign-3.example"] }] } }]);
      expect((await draft(["remove campaign-3", "--force"])).code).toBe(DRAFT_EXIT.ok);
    });

    it("refuses edits that name a zone they leave as it is", async () => {
      api.script([{ kind: "tool", input: { rationale: "r", edits: [{ op: "add_tags", zones: ["shop-two.example"], tags: ["shop"] }] } }]);
      const r = await draft(["x"]);
      expect(r.code).toBe(DRAFT_EXIT.refused);
      expect(r.err).toContain("the edits name zone(s) they leave unchanged (already so?): shop-two.example");
    });
  });
});
