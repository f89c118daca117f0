// Exit codes shared by edgefleet's command lines; README documents them.
export const EXIT = {
  ok: 0,
  /** The inventory (or the one at --base) is invalid. */
  invalid: 1,
  /** Bad command line: unknown option, unknown zone, unreadable git revision. */
  usage: 2,
  /** The safety guard refused the change; re-run with --force if it is intended. */
  refused: 3,
  /** The desired state violates a policy of the pack (policies/). */
  policy: 4,
} as const;
