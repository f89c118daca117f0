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
});
