import { describe, expect, it } from "vitest";
import { compliantWorker } from "../../test/fixtures/policies.ts";
import { runPolicies } from "../run.ts";
import { durableObjectMigrations } from "./durable-object-migrations.ts";

describe("durable-object-migrations", () => {
  it("passes a bound class created by a migration (another script's class needs none here)", async () => {
    expect(await runPolicies([compliantWorker()], [durableObjectMigrations])).toEqual([]);
  });
  it("flags a bound class with no migration", async () => {
    const w = compliantWorker();
    w.props.migrations = { newTag: "v1", newSqliteClasses: [] };
    const v = await runPolicies([w], [durableObjectMigrations]);
    expect(v.map((x) => x.message)).toEqual(["llm-proxy: Durable Object class 'RateLimiter' (binding 'RATE_LIMITER') has no migration"]);
  });
  it("accepts a class created in a later step or by a rename", async () => {
    const w = compliantWorker();
    w.props.migrations = { steps: [{ newTag: "v1", newSqliteClasses: ["Old"] }, { newTag: "v2", renamedClasses: [{ from: "Old", to: "RateLimiter" }] }] };
    expect(await runPolicies([w], [durableObjectMigrations])).toEqual([]);
  });
  it("accepts a script that is current (no migrations sent) and later steps that leave the bound class alone", async () => {
    const w = compliantWorker();
    delete w.props.migrations;
    expect(await runPolicies([w], [durableObjectMigrations])).toEqual([]);
    w.props.migrations = { oldTag: "v1", newTag: "v2", steps: [{ newSqliteClasses: ["Tenant"] }] };
    expect(await runPolicies([w], [durableObjectMigrations])).toEqual([]);
  });
  it("flags a later step that deletes or renames away a class still bound", async () => {
    const w = compliantWorker();
    w.props.migrations = { oldTag: "v1", newTag: "v2", steps: [{ deletedClasses: ["RateLimiter"] }] };
    expect((await runPolicies([w], [durableObjectMigrations])).map((x) => x.message)).toEqual(["llm-proxy: Durable Object class 'RateLimiter' (binding 'RATE_LIMITER') is deleted by a migration after v1"]);
    w.props.migrations = { oldTag: "v1", newTag: "v2", steps: [{ renamedClasses: [{ from: "RateLimiter", to: "Limiter" }] }] };
    expect(await runPolicies([w], [durableObjectMigrations])).toHaveLength(1);
  });
});
