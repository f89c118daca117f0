// The inventory's workers: section: validation against the zones and each Worker's
// wrangler.jsonc (located by file, line and field), the deployments it yields, and the
// order key rotation reads.
import { describe, expect, it } from "vitest";
import { FLEET, inventory, parseTexts, withZone } from "../../test/support/inventory.ts";
import { deriveDesiredState } from "./desired.ts";
import { TYPES } from "./names.ts";
import { workersBindingSecret, type DesiredWorker } from "./workers.ts";

const ZONES = withZone(`  - name: api.example
    id: a0000000000000000000000000000009
    profile: parked
    records:
      - { type: AAAA, name: llm, content: "100::", proxied: true }
      - { type: A, name: plain, content: 192.0.2.1 }
`);

const proxy = (extra = "") => `
workers:
  - script: proxy-main
    source: llm-proxy
    routes: [llm.api.example/*]
    secrets: { ANTHROPIC_API_KEY: anthropicApiKey, OPERATOR_TOKEN: operatorToken }
${extra}`;

describe("workers: in fleet.yaml", () => {
  it("derives each Worker with its routes, secrets and status URL", () => {
    const state = deriveDesiredState(inventory({ fleet: FLEET + proxy(), zones: ZONES }), { accountId: "acct" });
    const w = state.workers.find((x) => x.script === "proxy-main")!;
    expect(w).toMatchObject({
      source: "llm-proxy",
      canary: false,
      hostnames: ["llm.api.example"],
      zones: ["api.example"],
      statusUrl: "https://llm.api.example/_edgefleet/status",
      secrets: [
        { binding: "ANTHROPIC_API_KEY", config: "anthropicApiKey" },
        { binding: "OPERATOR_TOKEN", config: "operatorToken" },
      ],
    });
    expect(w.bundle).toMatch(/^sha256:[0-9a-f]{64}$/);
    const route = state.resources.find((r) => r.type === TYPES.workersRoute && r.name === "route/llm.api.example/*")!;
    expect(route.zone).toBe("api.example");
    expect(route.inputs).toEqual({ zoneId: "a0000000000000000000000000000009", pattern: "llm.api.example/*", script: "proxy-main" });
    // The router serves the web zone of the fixture, and the MTA-STS policy host of the
    // zone that receives mail (issue 15.6); it binds no secret.
    const router = state.workers.find((x) => x.script === "edgefleet-router")!;
    expect(router).toMatchObject({ secrets: [], statusUrl: null, zones: ["ops.example", "site.example"] });
    expect(router.hostnames.sort()).toEqual(["mta-sts.ops.example", "site.example", "www.site.example"]);
    const domain = state.resources.find((r) => r.type === TYPES.workersCustomDomain && r.name === "domain/mta-sts.ops.example")!;
    expect(domain).toMatchObject({ zone: "ops.example", parent: "edgefleet-router" });
    expect(domain.inputs).toEqual({ accountId: "acct", hostname: "mta-sts.ops.example", service: "edgefleet-router", zoneId: "a0000000000000000000000000000001" });
    // No route on the mail zone's apex or www: only its policy host is the router's.
    expect(state.resources.filter((r) => r.type === TYPES.workersRoute && r.zone === "ops.example")).toEqual([]);
  });

  it("reports every problem of the section with its line and field", () => {
    const bad = `
workers:
  - script: proxy-main
    source: llm-proxy
    routes: [llm.nowhere.example/*, plain.api.example/*, site.example/*]
    secrets: { ANTHROPIC_API_KEY: anthropicApiKey, EXTRA_KEY: extraKey }
    vars: { NO_SUCH_VAR: "1" }
  - script: proxy-main
    source: no-such-worker
  - script: edgefleet-router
    source: llm-proxy
    secrets: { ANTHROPIC_API_KEY: anthropicApiKey, OPERATOR_TOKEN: operatorToken }
`;
    const r = parseTexts({ fleet: FLEET + bad, zones: ZONES });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const lines = r.problems.map((p) => `${p.file}:${p.line}: ${p.path}: ${p.message}`);
    expect(lines).toEqual(
      expect.arrayContaining([
        "fleet.yaml:9: workers[0].routes[0]: 'llm.nowhere.example' is in no zone of the inventory",
        expect.stringMatching(/^fleet\.yaml:9: workers\[0\]\.routes\[1\]: 'plain\.api\.example' has no proxied A, AAAA or CNAME record/),
        expect.stringMatching(/^fleet\.yaml:9: workers\[0\]\.routes\[2\]: 'site\.example' is served by the router/),
        expect.stringMatching(/^fleet\.yaml:10: workers\[0\]\.secrets: llm-proxy needs secrets OPERATOR_TOKEN/),
        expect.stringMatching(/^fleet\.yaml:10: workers\[0\]\.secrets\.EXTRA_KEY: llm-proxy does not use a secret 'EXTRA_KEY'/),
        expect.stringMatching(/^fleet\.yaml:11: workers\[0\]\.vars\.NO_SUCH_VAR: 'NO_SUCH_VAR' is not a var of .*workers\/llm-proxy\/wrangler\.jsonc/),
        "fleet.yaml:12: workers[1].script: script 'proxy-main' is declared twice (first at workers[0])",
        expect.stringMatching(/workers\/no-such-worker\/wrangler\.jsonc:1: : cannot read the file \(ENOENT\)$/),
        "fleet.yaml:14: workers[2].script: script 'edgefleet-router' is a router shard's name (edgefleet-router)",
      ]),
    );
  });

  it("refuses a secret name that is not UPPER_SNAKE_CASE or a config key that Pulumi cannot hold", () => {
    const r = parseTexts({ fleet: FLEET + proxy().replace("OPERATOR_TOKEN: operatorToken", "operator-token: operator.token"), zones: ZONES });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems.map((p) => p.message).join("\n")).toMatch(/UPPER_SNAKE_CASE|camelCase/);
  });
});

describe("workersBindingSecret", () => {
  const w = (script: string, canary: boolean, secrets: string[]): DesiredWorker =>
    ({ script, canary, secrets: secrets.map((binding) => ({ binding, config: "k" })) }) as DesiredWorker;
  it("lists the Workers that bind a secret, canary first, then by script name", () => {
    const all = [w("b", false, ["KEY"]), w("a", false, ["KEY"]), w("z-canary", true, ["KEY"]), w("router", false, []), w("c", false, ["OTHER"])];
    expect(workersBindingSecret(all, "KEY").map((x) => x.script)).toEqual(["z-canary", "a", "b"]);
    expect(workersBindingSecret(all, "NOPE")).toEqual([]);
  });
});
