// The desired state as the resources a policy sees: inputs as props, references to
// outputs of resources not created yet left unknown (as in a preview).
import { isRef, type DesiredState, type InputValue } from "../../stacks/model/desired.ts";
import type { PlainResource } from "./resources.ts";

function hasRef(v: InputValue): boolean {
  if (isRef(v)) return true;
  if (Array.isArray(v)) return v.some(hasRef);
  if (v && typeof v === "object") return Object.values(v).some(hasRef);
  return false;
}

function props(v: InputValue): unknown {
  if (isRef(v)) return undefined;
  if (Array.isArray(v)) return v.map(props);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, props(x)]));
  return v;
}

export function fromDesired(state: DesiredState): PlainResource[] {
  // Inputs without references are passed as they are (policies only read them).
  return state.resources.map((r) => ({
    type: r.type,
    name: r.name,
    parent: r.parent,
    props: (hasRef(r.inputs) ? props(r.inputs) : r.inputs) as Record<string, unknown>,
  }));
}
