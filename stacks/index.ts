// The edgefleet Pulumi program (Pulumi.yaml: main). Thin on purpose: see program.ts.
import { main } from "./program.ts";

const outputs = main();

export const zoneCount = outputs.zoneCount;
export const recordCount = outputs.recordCount;
