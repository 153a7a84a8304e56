#!/usr/bin/env node
/** The `lattice` executable: wires the process's streams and exit code to the program. */
import { run } from './program.js';

run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr }).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // Never a stack trace with spec contents on stdout: one line on stderr, a distinct exit code.
    process.stderr.write(`lattice: internal error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 70;
  },
);
