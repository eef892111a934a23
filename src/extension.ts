/**
 * OOD Lens extension entry: wiring only. The engine runs in a worker thread behind EngineHost; commands,
 * providers and webviews receive the shared Services.
 */
import * as vscode from 'vscode';
import { EngineHost } from './providers/engineHost';
import { registerCreatePair } from './providers/createPair';
import { registerFolderScoring } from './providers/folderScoring';
import { registerInspectCommands } from './providers/inspectCommands';
import { registerManifestFeatures } from './providers/manifestFeatures';
import { registerOpenResults } from './providers/openResults';
import { registerPairPicker } from './providers/pairPicker';
import type { Services } from './services/services';
import { InspectPanel, registerInspectPanelSerializer } from './webviews/inspectPanel';

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('OOD Lens', { log: true });
  context.subscriptions.push(log);
  log.info(`OOD Lens ${context.extension.packageJSON.version ?? ''} activating (workspace ${vscode.workspace.isTrusted ? 'trusted' : 'in Restricted Mode'})`);

  const engine = new EngineHost(context, log);
  context.subscriptions.push(engine);

  const services: Services = {
    engine,
    log,
    context,
    openInspect: (uris) => InspectPanel.show(services, uris),
    isTrusted: () => vscode.workspace.isTrusted,
  };

  registerPairPicker(context, services, engine);
  registerCreatePair(context, services, engine);
  registerInspectCommands(context, services, (uris, column) => InspectPanel.show(services, uris, column));
  context.subscriptions.push(registerInspectPanelSerializer(services));

  // Each feature area registers on its own, so one failing never takes the others down.
  for (const [name, register] of [
    ['folder scoring', registerFolderScoring],
    ['dataset manifests', registerManifestFeatures],
    ['result files', registerOpenResults],
  ] as const) {
    try {
      register(context, services);
    } catch (err) {
      log.error(`could not start ${name}: ${(err as Error).stack ?? err}`);
    }
  }

  engine.start();
}

export function deactivate(): void {
  // Everything is disposed through context.subscriptions (the engine worker is terminated there).
}
