// The edit operations a drafted change may contain: the only thing the model's answer
// can become. Parsed with zod; the tool's input schema is generated from it.
import { z } from "zod";
import { IgnoreRule, RecordSpec, RelativeName, ZoneName, ZoneSpec } from "../../../stacks/model/schema.ts";

// Every string an edit carries is checked by the very schema of the inventory field it
// lands in (zones[].name, .profile, .tags[], .records[], .ignore[]), so an edit can never
// carry text the inventory itself would refuse (e.g. a tag holding "]" or a newline that
// would rewrite the YAML around it).
const Tag = ZoneSpec.shape.tags.unwrap().element;
const Profile = ZoneSpec.shape.profile.describe("A profile name from profiles.yaml");
const Zones = z.array(ZoneName).min(1).max(1000).describe("Zone names, exactly as in the inventory");
const Tags = z.array(Tag).min(1).max(50);
const RecordType = z.enum(["A", "AAAA", "CNAME", "MX", "TXT", "CAA", "SRV"]);
const RecordName = RelativeName;

export const Edit = z.discriminatedUnion("op", [
  z.strictObject({
    op: z.literal("add_zone"),
    name: ZoneName,
    profile: Profile,
    tags: z.array(Tag).max(50).optional(),
  }).describe("Add a new zone (without an id: pulumi up creates it)"),
  z.strictObject({ op: z.literal("remove_zone"), zones: Zones }).describe("Remove zones from the inventory"),
  z.strictObject({ op: z.literal("set_profile"), zones: Zones, profile: Profile }).describe("Set the posture profile of zones"),
  z.strictObject({ op: z.literal("add_tags"), zones: Zones, tags: Tags }).describe("Add tags to zones"),
  z.strictObject({ op: z.literal("remove_tags"), zones: Zones, tags: Tags }).describe("Remove tags from zones"),
  z.strictObject({ op: z.literal("add_record"), zone: ZoneName, record: RecordSpec }).describe("Add an extra DNS record to a zone"),
  z
    .strictObject({
      op: z.literal("remove_record"),
      zone: ZoneName,
      type: RecordType,
      name: RecordName,
      content: z.string().max(4096).optional().describe("Needed when several records share the type and name"),
    })
    .describe("Remove an extra DNS record of a zone (posture records change through profiles)"),
  z.strictObject({ op: z.literal("ignore_record"), zone: ZoneName, rule: IgnoreRule }).describe("Mark records edgefleet must leave alone"),
]);

export const DraftInput = z.strictObject({
  rationale: z.string().min(1).max(2000).describe("Why these edits implement the request, in two or three sentences"),
  edits: z.array(Edit).max(500).describe("The edits, applied in order"),
});

export type Edit = z.infer<typeof Edit>;
export type DraftInput = z.infer<typeof DraftInput>;

export const TOOL_NAME = "propose_inventory_edits";

/** The tool's JSON Schema (Anthropic tool input_schema), generated from the zod schema. */
export function toolInputSchema(): Record<string, unknown> {
  const { $schema: _ignored, ...schema } = z.toJSONSchema(DraftInput, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
  return schema;
}
