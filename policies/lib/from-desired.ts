// The desired state as the resources a policy sees: inputs as props, references to
// outputs of resources not created yet left unknown (as in a preview).
import { isRef, mapRefs, type DesiredState, type InputValue } from "../../stacks/model/desired.ts";
import type { PlainResource } from "./resources.ts";

function hasRef(v: InputValue): boolean {
  let found = false;
  mapRefs(v, (ref) => (found ||= isRef(ref)));
  return found;
}

/** Inputs as a preview shows them: references to outputs not known yet are undefined. */
const props = (v: InputValue) => mapRefs(v, (ref) => (isRef(ref) ? undefined : ref));

export function fromDesired(state: DesiredState): PlainResource[] {
  // Inputs without references are passed as they are (policies only read them).
  return state.resources.map((r) => ({
    type: r.type,
    name: r.name,
    parent: r.parent,
    props: (hasRef(r.inputs) ? props(r.inputs) : r.inputs) as Record<string, unknown>,
  }));
}
