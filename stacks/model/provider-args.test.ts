// The model's inputs are checked against @pulumi/cloudflare's Args: each line marked as
// an expected error below must stay a type error (`npm run typecheck` fails otherwise),
// so a misspelt or misshaped input is caught by `npm test`, not by `pulumi up`.
import { describe, expect, it } from "vitest";
import { TYPES } from "./names.ts";
import { modelInputs, type ModelInputs } from "./provider-args.ts";

describe("modelInputs", () => {
  it("accepts the provider's names and shapes, with references at the leaves, and drops undefined fields", () => {
    const inputs = modelInputs(TYPES.workersScript, {
      accountId: "acct",
      scriptName: "w",
      content: { $bundle: "llm-proxy", sha256: "sha256:00" },
      bindings: [{ type: "secret_text", name: "KEY", text: { $secret: "anthropicApiKey" } }, { type: "kv_namespace", name: "KV", namespaceId: { $ref: "kv/x", $output: "id" } }],
      migrations: { oldTag: "v1", newTag: "v2", steps: [{ newSqliteClasses: ["A"] }] },
      observability: { enabled: true, logs: { enabled: true, invocationLogs: true } },
      compatibilityFlags: undefined,
    });
    expect(inputs).not.toHaveProperty("compatibilityFlags");
    expect(inputs.migrations).toEqual({ oldTag: "v1", newTag: "v2", steps: [{ newSqliteClasses: ["A"] }] });
  });

  it("refuses a misspelt or misshaped input at compile time", () => {
    const bad: unknown[] = [
      // @ts-expect-error a misspelt input name (the provider's is scriptName)
      modelInputs(TYPES.workersScript, { accountId: "a", scriptname: "w" }),
      // @ts-expect-error migrations.steps is a list of steps, not a step
      modelInputs(TYPES.workersScript, { accountId: "a", scriptName: "w", migrations: { newTag: "v1", steps: { newSqliteClasses: ["A"] } } }),
      // @ts-expect-error observability.logs needs invocationLogs (required by the provider)
      modelInputs(TYPES.workersScript, { accountId: "a", scriptName: "w", observability: { enabled: true, logs: { enabled: true } } }),
      // @ts-expect-error a DNS record's ttl is a number
      modelInputs(TYPES.dnsRecord, { zoneId: "z", name: "a.example", type: "A", ttl: "auto", content: "192.0.2.1" }),
      // @ts-expect-error a route names its script with `script`, not `scriptName`
      modelInputs(TYPES.workersRoute, { zoneId: "z", pattern: "a.example/*", scriptName: "w" }),
    ];
    expect(bad).toHaveLength(5);
  });

  it("types each resource type's inputs separately", () => {
    const consumer: ModelInputs<typeof TYPES.queueConsumer> = { accountId: "a", queueId: { $ref: "queue/q", $output: "queueId" }, type: "worker", settings: { batchSize: 10 } };
    expect(modelInputs(TYPES.queueConsumer, consumer)).toEqual(consumer);
  });
});
