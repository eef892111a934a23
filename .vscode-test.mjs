// @vscode/test-cli configuration: the extension in a desktop VS Code that @vscode/test-electron downloads.
// Run with `npx vscode-test` on a machine that can download VS Code (not in the offline sandbox, where the
// same flows run in code-server instead: `npm run test:e2e`). Build first: `npm run build`.
import { defineConfig } from '@vscode/test-cli';

export default defineConfig({
  label: 'desktop',
  files: 'test/vscode/**/*.vscode.ts',
  version: 'stable',
  extensionDevelopmentPath: '.',
  // The committed sample images: an MNIST digit and a FashionMNIST item.
  workspaceFolder: './samples',
  launchArgs: ['--disable-extensions', '--disable-workspace-trust'],
  mocha: {
    ui: 'tdd',
    timeout: 120_000,
    // The suite is TypeScript: tsx's CommonJS hook compiles it inside the extension host.
    require: ['tsx/cjs'],
  },
});
