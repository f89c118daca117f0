// Pulumi's mock engine for the tests that run a component or the whole program: the mock
// monitor records each registration and answers like an engine would; no resource code
// is mocked away.
import * as pulumi from "@pulumi/pulumi";
import { TYPES } from "../../stacks/model/names.ts";

/** How Pulumi marks a secret value on the wire: the mock sees `{[SECRET_SIG]: SECRET_VALUE, value}`. */
export const SECRET_SIG = "4dabf18193072939515e22adb298388d";
export const SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270";

/** The id the mock engine gives a custom resource (and a D1 database's uuid, a queue's queueId). */
export const mockId = (name: string) => `mock-id:${name}`;

export interface Registration {
  type: string;
  name: string;
  /** As the engine received them (secrets still wrapped). */
  inputs: Record<string, unknown>;
  custom: boolean;
  /** The URNs the registration said it depends on (explicit dependsOn and the resources
   *  its inputs refer to), as the engine receives them. */
  dependencies: string[];
}

export interface MockRun<T> {
  /** What `declare` returned (e.g. the program's outputs). */
  result: T;
  /** Every registration, in order, the stack's own included. */
  registrations: Registration[];
  urns: string[];
}

type RegisterRequest = { getType(): string; getName(): string; getDependenciesList(): string[] };
type Runtime = {
  waitForRPCs(): Promise<void>;
  getMonitor(): { getRegisteredResources(): Map<string, unknown>; registerResource(req: RegisterRequest, callback: unknown): Promise<void> };
};
type WithCallsites = { callsites: () => unknown[] };

/**
 * Runs `declare` under Pulumi's mocks as stack `stack` of project `edgefleet` (config set
 * first, the keys in `secrets` as secrets) and returns once the engine has every
 * registration. The engine answers with the inputs as state, `mockId(name)` as a custom
 * resource's id and as the ids a D1 database or a queue hands its bindings (uuid,
 * queueId), and refuses provider function calls: nothing under test may make one.
 * Pulumi captures a stack trace for every promise and registration (for leak reports and
 * source positions in the CLI), which at thousands of resources is most of the run
 * (FINDINGS.md); neither plays a part in what is registered, so both are off meanwhile.
 */
export async function runUnderMocks<T>(
  opts: { stack: string; config?: Record<string, string>; secrets?: string[]; project?: string },
  declare: () => T | Promise<T>,
): Promise<MockRun<T>> {
  const registrations: Registration[] = [];
  const stackTraceLimit = Error.stackTraceLimit;
  const resource = pulumi.Resource as unknown as WithCallsites;
  const callsites = resource.callsites;
  Error.stackTraceLimit = 0;
  resource.callsites = () => [];
  try {
    await pulumi.runtime.setMocks(
      {
        newResource(args) {
          registrations.push({ type: args.type, name: args.name, inputs: args.inputs, custom: args.custom ?? false, dependencies: [] });
          const ids = args.type === TYPES.d1Database ? { uuid: mockId(args.name) } : args.type === TYPES.queue ? { queueId: mockId(args.name) } : {};
          return { id: args.custom ? mockId(args.name) : undefined, state: { ...args.inputs, ...ids } };
        },
        call(args) {
          throw new Error(`nothing under test may call provider functions (it called ${args.token})`);
        },
      },
      opts.project ?? "edgefleet",
      opts.stack,
      false,
    );
    if (opts.config !== undefined) pulumi.runtime.setAllConfig(opts.config, opts.secrets ?? []);
    const runtime = pulumi.runtime as unknown as Runtime;
    // The mock's newResource is not told a registration's dependencies; the request is.
    const monitor = runtime.getMonitor();
    const register = monitor.registerResource.bind(monitor);
    const dependencies = new Map<string, string[]>();
    monitor.registerResource = (req, callback) => {
      dependencies.set(`${req.getType()}::${req.getName()}`, req.getDependenciesList());
      return register(req, callback);
    };
    const result = await declare();
    await runtime.waitForRPCs();
    for (const r of registrations) r.dependencies = dependencies.get(`${r.type}::${r.name}`) ?? [];
    return { result, registrations, urns: [...runtime.getMonitor().getRegisteredResources().keys()] };
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
    resource.callsites = callsites;
  }
}
