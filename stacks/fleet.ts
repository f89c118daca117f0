// Declares a whole desired state with Pulumi: one ZonePosture per zone. Called by
// the program (stacks/program.ts) and, under Pulumi's mocks, by the equivalence test.
import type * as pulumi from "@pulumi/pulumi";
import { ZonePosture } from "./components/zone-posture.ts";
import type { DesiredResource, DesiredState } from "./model/desired.ts";
import { TYPES } from "./model/names.ts";

export interface DeclaredFleet {
  zones: Map<string, ZonePosture>;
}

export function declareFleet(state: DesiredState, opts?: pulumi.ComponentResourceOptions): DeclaredFleet {
  const children = new Map<string, DesiredResource[]>();
  for (const r of state.resources) {
    if (!r.parent) continue;
    const siblings = children.get(r.parent);
    if (siblings) siblings.push(r);
    else children.set(r.parent, [r]);
  }
  const zones = new Map<string, ZonePosture>();
  for (const r of state.resources) {
    if (r.type !== TYPES.zonePosture) continue;
    zones.set(r.zone, new ZonePosture(r.name, { resources: children.get(r.name) ?? [] }, opts));
  }
  return { zones };
}
