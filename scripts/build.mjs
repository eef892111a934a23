// esbuild bundles: the extension host entry, the engine worker, the CLI and the webview UIs.
// Native modules (onnxruntime-node, sharp) and TensorFlow.js stay external: they load from node_modules.
import { build, context } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { writeManifestValidator } from './manifestValidator.mjs';
import { writeWasmKernels } from './wasmKernels.mjs';

const require = createRequire(import.meta.url);
const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');
// tsx: only the path that runs the worker from the TypeScript sources (tests) resolves it; bundles never do.
const external = ['vscode', 'onnxruntime-node', 'sharp', '@jsquash/webp', '@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'tsx/*'];
const common = { bundle: true, sourcemap: !production, minify: production, logLevel: 'warning' };

const CLI_COMMAND_BUNDLES = { 'cli-fit': 'src/cli/fit.ts', 'cli-reproduce': 'src/cli/reproduce.ts' };
/** In cli.js, main.ts's `import('./fit')` and `import('./reproduce')` load those bundles (the list above) from beside it. */
const cliCommandsApart = {
  name: 'cli-commands-apart',
  setup(b) {
    const commands = Object.keys(CLI_COMMAND_BUNDLES).map((bundle) => bundle.slice('cli-'.length));
    b.onResolve({ filter: new RegExp(`^\\./(${commands.join('|')})$`) }, (args) => (args.importer.endsWith(join('src', 'cli', 'main.ts')) ? { path: `./cli-${args.path.slice(2)}.js`, external: true } : undefined));
  },
};

const nodeEntries = {
  extension: 'src/extension.ts',
  worker: 'src/worker/engineWorker.ts',
  cli: 'src/cli/main.ts',
  // fit and reproduce are bundles of their own, loaded by cli.js when their command runs: in cli.js they were
  // 2.4 MB of its 3.7 MB (vega-lite and its fetch stack for reproduce's figures), parsed on every start.
  ...CLI_COMMAND_BUNDLES,
  preprocessWorker: 'src/inference/preprocessWorker.ts',
  manifestWorker: 'src/worker/manifestWorker.ts',
};
const node = {
  ...common,
  entryPoints: Object.fromEntries(Object.entries(nodeEntries).filter(([, f]) => existsSync(f))),
  outdir: 'dist',
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external,
  // Prefer ES modules: some packages (jsonc-parser) ship a UMD "main" whose inner requires esbuild cannot follow.
  mainFields: ['module', 'main'],
  plugins: [cliCommandsApart],
};
const uiDir = 'src/webviews/ui';
const web = {
  ...common,
  entryPoints: existsSync(uiDir) ? readdirSync(uiDir).filter((f) => f.endsWith('.ts')).map((f) => join(uiDir, f)) : [],
  outdir: 'dist/webview',
  platform: 'browser',
  format: 'iife',
  target: 'es2022',
};

// The pair manifest's schema, compiled ahead of time (the bundles import the generated validator).
if (writeManifestValidator()) console.log('regenerated src/inference/pair/manifestValidator.generated.js from the schema');
// The WebAssembly kernels, assembled ahead of time; wabt is a dev dependency: without it the committed modules stand.
if (existsSync(join('node_modules', 'wabt'))) for (const path of await writeWasmKernels()) console.log(`regenerated ${path} from its .wat`);

// The WASM backend of TensorFlow.js loads its .wasm files from next to the bundle.
mkdirSync('dist', { recursive: true });
const wasmDir = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
for (const f of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm']) {
  const src = join(wasmDir, 'dist', f);
  if (existsSync(src)) copyFileSync(src, join('dist', f));
}

if (watch) {
  for (const options of [node, web]) if (options.entryPoints.length || Object.keys(options.entryPoints).length) await (await context(options)).watch();
} else {
  await build(node);
  if (web.entryPoints.length) await build(web);
}
