// Preloaded (node --require) into a CLI process by the tests: on exit, writes the process's peak resident set
// size (VmHWM from /proc/self/status, all threads included) to the file named by OOD_LENS_PEAK_RSS_FILE.
'use strict';
const { readFileSync, writeFileSync } = require('node:fs');
process.on('exit', () => {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  if (m && process.env.OOD_LENS_PEAK_RSS_FILE) writeFileSync(process.env.OOD_LENS_PEAK_RSS_FILE, String(Number(m[1]) * 1024));
});
