import { describe, expect, it } from "vitest";
import { compliantWorker } from "../../test/fixtures/policies.ts";
import { runPolicies } from "../run.ts";
import { nodejsCompatDate } from "./nodejs-compat-date.ts";

describe("nodejs-compat-date", () => {
  it("passes nodejs_compat with a current date", async () => {
    expect(await runPolicies([compliantWorker()], [nodejsCompatDate])).toEqual([]);
  });
  it("flags nodejs_compat with a date before 2024-09-23", async () => {
    const w = compliantWorker();
    w.props.compatibilityDate = "2024-09-22";
    const v = await runPolicies([w], [nodejsCompatDate]);
    expect(v.map((x) => x.message)).toEqual(["llm-proxy: nodejs_compat needs a compatibility date of 2024-09-23 or later (it is '2024-09-22')"]);
  });
  it("ignores an old date without nodejs_compat", async () => {
    const w = compliantWorker();
    w.props.compatibilityDate = "2023-01-01";
    w.props.compatibilityFlags = [];
    expect(await runPolicies([w], [nodejsCompatDate])).toEqual([]);
  });
});
