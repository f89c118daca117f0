// Entry point of `npm run bench:ledger`; the benchmark is bench/lib/ledger/run.ts.
import { runLedgerBench } from "./lib/ledger/run.ts";

process.exitCode = await runLedgerBench(process.argv.slice(2));
