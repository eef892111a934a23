// Loaded with `node -r` into the CLI under measurement: reports the process's peak RSS when it exits.
// VmHWM, not process.resourceUsage().maxRSS: on Linux ru_maxrss survives fork + exec, so a child started by
// a large parent (the bench) reports the parent's size whenever that was larger.
const { isMainThread } = require('node:worker_threads');
if (isMainThread) {
  process.on('exit', () => {
    let mb = process.resourceUsage().maxRSS / 1024;
    try {
      const hwm = /VmHWM:\s+(\d+) kB/.exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'));
      if (hwm) mb = Number(hwm[1]) / 1024;
    } catch {
      // not Linux: maxRSS it is
    }
    process.stderr.write(`\nOOD_LENS_MAX_RSS_MB ${mb}\n`);
  });
}
