// Runs the policies over plain resources (the desired state), collecting violations,
// as the Pulumi policy engine would over a preview. Used by `npm run plan` and tests.
import type { ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
import { policies as all } from "./all.ts";
import { collector, isNotApplicable, isUnknownValue, resourceArgs, stackArgs, type PlainResource, type Violation } from "./lib/resources.ts";

export type { PlainResource, Violation };

/**
 * A policy that read an input unknown in a preview: the engine reports it as an advisory
 * "can't run during preview" and checks nothing more of it (@pulumi/policy server.js), so
 * a mandatory policy would pass by stopping. Here it is a violation, so `npm run plan` and
 * the tests refuse a policy that would stop in a first preview.
 */
function stoppedOnUnknown(e: Error): string {
  return `can't run during preview: ${e.message} (read it with known(): an output of a resource not created yet)`;
}

export async function runPolicies(resources: PlainResource[], policies = all): Promise<Violation[]> {
  const violations: Violation[] = [];
  const stackPolicies = policies.filter((p): p is StackValidationPolicy => "validateStack" in p);
  const resourcePolicies = policies
    .filter((p): p is ResourceValidationPolicy => !("validateStack" in p))
    .flatMap((p) => {
      const v = p.validateResource;
      return (Array.isArray(v) ? v : v ? [v] : []).map((validate) => ({ validate, report: collector(p.name, violations) }));
    });
  // Resource by resource, so only one argument object is alive at a time.
  for (const r of resources) {
    const args = resourceArgs(r);
    for (const { validate, report } of resourcePolicies) {
      try {
        await validate(args, report);
      } catch (e) {
        if (isUnknownValue(e)) report(stoppedOnUnknown(e), args.urn);
        else if (!isNotApplicable(e)) throw e;
      }
    }
  }
  if (stackPolicies.length > 0) {
    const stack = stackArgs(resources);
    for (const policy of stackPolicies) {
      const report = collector(policy.name, violations);
      try {
        await policy.validateStack(stack, report);
      } catch (e) {
        if (isUnknownValue(e)) report(stoppedOnUnknown(e));
        else if (!isNotApplicable(e)) throw e;
      }
    }
  }
  // Report in the pack's order of policies, as a preview lists them.
  const order = new Map(policies.map((p, i) => [p.name, i]));
  return violations.sort((a, b) => order.get(a.policy)! - order.get(b.policy)!);
}
