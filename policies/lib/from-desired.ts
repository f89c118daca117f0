// The desired state as the resources a policy sees: inputs as props, references to
// outputs of resources not created yet left unknown (as in a preview).
import { isRef, mapRefs, type DesiredState, type InputValue } from "../../stacks/model/desired.ts";
import type { PlainResource } from "./resources.ts";
import { UNKNOWN_STRING } from "./unknown.ts";

/** Whether a value holds a reference to another resource's output (a walk that builds
 *  nothing: it runs over every input of a stack of tens of thousands of records). */
function hasRef(v: InputValue): boolean {
  if (isRef(v)) return true;
  if (Array.isArray(v)) return v.some(hasRef);
  if (v && typeof v === "object") {
    for (const k in v) if (hasRef((v as Record<string, InputValue>)[k]!)) return true;
  }
  return false;
}

/** Inputs as a preview shows them: references to outputs not known yet are unknown, and
 *  reading one throws (policyResource wraps the props in the SDK's unknownCheckingProxy). */
const props = (v: InputValue) => mapRefs(v, (ref) => (isRef(ref) ? UNKNOWN_STRING : ref));

/** Where a resource's unknown inputs are: only among its own inputs (a DNS record's
 *  zoneId), or also inside them (a Worker's bindings). */
function unknownsOf(inputs: Record<string, InputValue>): PlainResource["unknowns"] {
  for (const k in inputs) {
    const v = inputs[k]!;
    if (!isRef(v) && hasRef(v)) return "nested";
  }
  return "top";
}

export function fromDesired(state: DesiredState): PlainResource[] {
  // Inputs without references are passed as they are (policies only read them).
  return state.resources.map((r) =>
    hasRef(r.inputs)
      ? { type: r.type, name: r.name, parent: r.parent, props: props(r.inputs) as Record<string, unknown>, unknowns: unknownsOf(r.inputs as Record<string, InputValue>), ...refsOf(r.inputs as Record<string, InputValue>) }
      : { type: r.type, name: r.name, parent: r.parent, props: r.inputs as Record<string, unknown> },
  );
}

/** The top-level inputs that are a reference, with the referenced resource's name (the
 *  engine's propertyDependencies of those inputs). */
function refsOf(inputs: Record<string, InputValue>): Pick<PlainResource, "refs"> {
  const refs: Record<string, string> = {};
  for (const k in inputs) {
    const v = inputs[k]!;
    if (isRef(v)) refs[k] = v.$ref;
  }
  return Object.keys(refs).length > 0 ? { refs } : {};
}
