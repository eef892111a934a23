/** What every provider module receives from extension.ts. */
import type * as vscode from 'vscode';
import type { EngineService } from './engineService';

export interface Services {
  engine: EngineService;
  log: vscode.LogOutputChannel;
  context: vscode.ExtensionContext;
  openInspect(uris: vscode.Uri[]): Promise<void>;
  isTrusted(): boolean;
}
