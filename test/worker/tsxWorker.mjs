// Runs a TypeScript worker entry from the sources: worker threads need tsx's loaders registered in them
// too (the ESM hooks for import(), the CommonJS hook for require()).
import { createRequire } from 'node:module';
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
createRequire(import.meta.url)('tsx/cjs');
await import(workerData.entry);
