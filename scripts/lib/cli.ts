// What edgefleet's single-command command lines share (commander): help as -h/--help,
// output through the caller's io (tests capture it), errors handed back instead of
// exiting the process, and how --help or a usage error becomes the exit code.
import { Command, CommanderError, InvalidArgumentError } from "commander";

export interface CliOutput {
  out: (s: string) => void;
  err: (s: string) => void;
}

/** A command that writes through `io`, throws instead of exiting, and refuses stray arguments. */
export function newCommand(name: string, io: CliOutput): Command {
  return new Command(name)
    .helpOption("-h, --help", "show this help")
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .allowExcessArguments(false);
}

/**
 * Parses `argv` (the user's arguments only). Returns the exit code to end with when it
 * was --help (`exit.ok`) or a usage error commander already reported (`exit.usage`),
 * and undefined when the command should run.
 */
export function parseArgs(cmd: Command, argv: string[], exit: { ok: number; usage: number }): number | undefined {
  try {
    cmd.parse(argv, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? exit.ok : exit.usage;
    throw e;
  }
  return undefined;
}

/** An option parser for a whole number of at least `min`; `name` is the option, for the message. */
export function intAtLeast(name: string, min: number): (v: string) => number {
  return (v: string) => {
    if (!/^\d+$/.test(v) || Number(v) < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return Number(v);
  };
}
