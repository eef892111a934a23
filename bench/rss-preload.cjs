// Loaded with `node -r` into the CLI under measurement: reports the process's peak RSS when it exits.
process.on('exit', () => process.stderr.write(`\nOOD_LENS_MAX_RSS_MB ${process.resourceUsage().maxRSS / 1024}\n`));
