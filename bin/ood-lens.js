#!/usr/bin/env node
'use strict';
// The CLI bundle is built by `npm install` (prepare) or `npm run build`.
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const bundle = join(__dirname, '..', 'dist', 'cli.js');
if (!existsSync(bundle)) {
  process.stderr.write('ood-lens: dist/cli.js is missing; run `npm run build` first\n');
  process.exit(1);
}
require(bundle).main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
