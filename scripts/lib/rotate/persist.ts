// Records the new key where the next `pulumi up` reads it: the stack's Pulumi secret
// config (`edgefleet:<config>`), set through the Pulumi CLI with the value on stdin so
// it never appears in argv (visible to every user through /proc). Without the CLI the
// step fails clearly and the rotation stays paused before revoke (see docs/rotation.md).
import { spawn } from "node:child_process";

export interface Persister {
  /** Sets Pulumi secret config `edgefleet:<configKey>` of the stack to `value`. */
  persist(configKey: string, value: string): Promise<void>;
  /** The command shown in the plan and in messages (never with the value). */
  describe(configKey: string): string;
}

export class PersistError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PersistError";
  }
}

export interface PulumiOptions {
  /** The Pulumi CLI (default "pulumi" on PATH). */
  bin: string;
  stack: string;
  /** Where Pulumi.yaml lives. */
  cwd: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

export function pulumiConfigPersister(o: PulumiOptions): Persister {
  const args = (key: string) => ["config", "set", "--secret", "--stack", o.stack, `edgefleet:${key}`];
  const describe = (key: string) => `${o.bin} ${args(key).join(" ")}   (value on stdin)`;
  return {
    describe,
    persist(key, value) {
      return new Promise<void>((resolve, reject) => {
        const child = spawn(o.bin, args(key), { cwd: o.cwd, env: o.env ?? process.env, stdio: ["pipe", "ignore", "pipe"] });
        let stderr = "";
        const timer = setTimeout(() => child.kill("SIGTERM"), o.timeoutMs ?? 60_000);
        child.stderr.on("data", (c: Buffer) => {
          if (stderr.length < 4000) stderr += c.toString("utf8");
        });
        child.on("error", (e: NodeJS.ErrnoException) => {
          clearTimeout(timer);
          reject(
            new PersistError(
              e.code === "ENOENT"
                ? `the Pulumi CLI '${o.bin}' was not found (set --pulumi-bin). The new key is live on every Worker and the old one is NOT revoked. ` +
                  `Install the CLI and resume, or run \`${describe(key)}\` yourself and resume with --persisted-by-hand.`
                : `could not run '${o.bin}': ${e.message}`,
            ),
          );
        });
        child.on("close", (code, signal) => {
          clearTimeout(timer);
          if (code === 0) resolve();
          else reject(new PersistError(`\`${describe(key)}\` failed (${signal ? `signal ${signal}` : `exit ${code}`})${stderr.trim() ? `: ${stderr.trim().split("\n").slice(-3).join(" / ")}` : ""}`));
        });
        child.stdin.on("error", () => {}); // EPIPE if the CLI exits early; reported by close
        child.stdin.end(value);
      });
    },
  };
}
