// Preloaded into a benchmarked child process (bench/lib.ts runNode): at exit, writes the process's peak
// resident set (getrusage maxRSS, KiB) to fd 3, which the benchmark reads. Worker threads load preloads
// too; only the main thread reports (the figure is the whole process's anyway).
'use strict';
const fs = require('node:fs');
const { isMainThread } = require('node:worker_threads');
if (isMainThread) {
  process.on('exit', () => {
    try {
      fs.writeSync(3, `${process.resourceUsage().maxRSS}\n`);
    } catch {
      // fd 3 is not open when the script runs outside a benchmark: nothing to report to.
    }
  });
}
