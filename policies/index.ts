// The edgefleet policy pack for `pulumi preview --policy-pack policies`. It only
// assembles the pack: each policy is a plain object in its own file (see all.ts).
import { PolicyPack } from "@pulumi/policy";
import { policies } from "./all.ts";

new PolicyPack("edgefleet", { policies });
