// The import rules of src/ (issue 24), run by `npm test` (test/build/dependencyRules.test.ts) and by
// `npx depcruise src --config .dependency-cruiser.cjs`. ARCHITECTURE.md draws the same picture.
//
// The engine's layers, low to high. A module may import its own layer or a lower one:
//   io < backends < image < features < pair < detectors < pipeline < (engine: the top-level files) < datasets < fit
// Two things are allowed across that order, each for a stated reason:
//   - engineTypes.ts, the engine's public types (and errorResult, a plain constructor), is imported by every layer:
//     it is the contract they share, and it imports nothing but types itself (checked below);
//   - type-only imports (`import type`) of a higher layer: they are erased at compile time, so no code runs upwards.
//     Circles are checked with them included.
const LAYERS = ['io', 'backends', 'image', 'features', 'pair', 'detectors', 'pipeline', '', 'datasets', 'fit'];
const E = '^src/inference/';
const layerPath = (name) => (name === '' ? `${E}[^/]+\\.ts$` : `${E}${name}/`);

const layerRules = LAYERS.map((name, rank) => {
  const higher = LAYERS.slice(rank + 1).map(layerPath);
  return higher.length === 0
    ? null
    : {
        name: `inference-layer-${name || 'engine'}`,
        comment: `src/inference/${name || '(top level)'} imports only its own layer or lower ones (${LAYERS.slice(0, rank + 1).map((l) => l || 'engine').join(' < ')}); type-only imports and engineTypes.ts excepted`,
        severity: 'error',
        from: { path: layerPath(name), pathNot: name === '' ? `${E}engineTypes\\.ts$` : undefined },
        to: { path: higher, pathNot: `${E}engineTypes\\.ts$`, dependencyTypesNot: ['type-only'] },
      };
}).filter(Boolean);

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'no import circles anywhere in src/ (type-only and dynamic imports count)',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'inference-is-plain-node',
      comment: 'the engine imports no vscode and nothing outside itself but src/shared (and the pair schema it validates with)',
      severity: 'error',
      from: { path: '^src/inference/' },
      to: { pathNot: ['^src/inference/', '^src/shared/', '^schemas/', '^node_modules/', '^(node:)?[a-z_]+$'], dependencyTypesNot: ['core'] },
    },
    {
      name: 'inference-no-vscode',
      severity: 'error',
      from: { path: '^src/(inference|shared|webviews/ui)/' },
      to: { path: '^vscode$' },
    },
    {
      name: 'engine-types-are-types',
      comment: 'engineTypes.ts is imported by every layer, so it may import types only',
      severity: 'error',
      from: { path: `${E}engineTypes\\.ts$` },
      to: { dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'webview-ui-imports-only-shared',
      comment: 'the webview scripts run in the browser: they import src/shared and npm packages, nothing of the host',
      severity: 'error',
      from: { path: '^src/webviews/ui/' },
      to: { path: '^src/', pathNot: ['^src/webviews/ui/', '^src/shared/', `${E}engineTypes\\.ts$`] },
    },
    {
      name: 'webview-ui-types-of-the-engine',
      comment: "the webview scripts may name the engine's public result types (type-only: erased from the bundle)",
      severity: 'error',
      from: { path: '^src/webviews/ui/' },
      to: { path: `${E}engineTypes\\.ts$`, dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'webviews-never-import-providers',
      comment: 'what webviews and providers both need lives in src/services or src/shared',
      severity: 'error',
      from: { path: '^src/webviews/' },
      to: { path: '^src/providers/' },
    },
    {
      name: 'shared-is-a-leaf',
      comment: 'src/shared is the typed protocol of both sides: it imports only itself (and types of the engine)',
      severity: 'error',
      from: { path: '^src/shared/' },
      to: { path: '^src/', pathNot: '^src/shared/', dependencyTypesNot: ['type-only'] },
    },
    ...layerRules,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], extensions: ['.ts', '.js', '.json'] },
    moduleSystems: ['cjs', 'es6'],
  },
};
