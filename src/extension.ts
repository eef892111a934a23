/**
 * OOD Lens extension entry: wiring only. The engine runs in a worker thread behind EngineHost; commands,
 * providers and webviews receive the shared Services.
 */
import { performance } from 'node:perf_hooks';
import * as vscode from 'vscode';
import { registerDocs } from './services/docs';
import { EngineHost } from './providers/engineHost';
import { registerCreatePair } from './providers/createPair';
import { registerFolderScoring } from './providers/folderScoring';
import { registerInspectCommands } from './providers/inspectCommands';
import { registerManifestFeatures } from './providers/manifestFeatures';
import { registerOpenResults } from './providers/openResults';
import { registerPairPicker } from './providers/pairPicker';
import type { Services } from './services/services';
import { registerWalkthrough, showWalkthroughOnce } from './providers/walkthrough';
import { registerWarmup } from './providers/warmup';
import { InspectPanel, registerInspectPanelSerializer } from './webviews/inspectPanel';

export function activate(context: vscode.ExtensionContext): void {
  const started = performance.now();
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

  registerDocs(context);
  registerPairPicker(context, services, engine);
  registerCreatePair(context, services, engine);
  const openInspect = (uris: vscode.Uri[], column?: vscode.ViewColumn) => InspectPanel.show(services, uris, column);
  registerInspectCommands(context, services, openInspect);
  registerWalkthrough(context, services, openInspect);
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

  // The engine (worker + models) starts when an image or a dataset manifest is first opened, or on the first request.
  registerWarmup(context, (why) => {
    log.info(`warming up the engine: ${why}`);
    engine.warm(why);
  }, () => engine.isStarted);
  showWalkthroughOnce(
    context,
    log,
    () => InspectPanel.openPanels().length > 0,
    () => InspectPanel.openPanels().some((p) => p.waitingForPage),
  );
  log.info(`activated in ${(performance.now() - started).toFixed(1)} ms (the engine ${engine.isStarted ? 'is warming up' : 'starts with the first image or manifest'})`);
}

export function deactivate(): void {
  // Everything is disposed through context.subscriptions (the engine worker is terminated there).
}
