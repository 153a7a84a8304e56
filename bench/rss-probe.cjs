// Preloaded into a benchmarked child process (bench/lib.ts runNode): at exit, writes the process's own
// peak resident set (getrusage maxRSS, KiB) to fd 3, which the benchmark reads. Nothing else.
'use strict';
const fs = require('node:fs');
process.on('exit', () => {
  try {
    fs.writeSync(3, `${process.resourceUsage().maxRSS}\n`);
  } catch {
    // fd 3 is not open when the script runs outside a benchmark: nothing to report to.
  }
});
