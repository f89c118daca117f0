// The inventory checks that guard the posture against hostile or careless input
// (issue 15 items 1-4): called from validate.ts after the per-name checks.
import type { Inventory } from "../schema.ts";
import type { SemanticProblem } from "../validate.ts";
import { buildContext } from "./context.ts";
import { checkEmailPosture, checkIgnoreRules } from "./email.ts";
import { checkLimits } from "./limits.ts";

export function fleetChecks(inv: Inventory): SemanticProblem[] {
  const problems: SemanticProblem[] = [];
  const ctx = buildContext(inv, problems);
  checkEmailPosture(ctx);
  checkIgnoreRules(ctx);
  checkLimits(ctx);
  return problems;
}
