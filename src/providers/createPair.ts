/**
 * "OOD Lens: Create Pair…" (command palette, walkthroughs) and "Create OOD pair from this model" (Explorer
 * context menu on .onnx files and TF.js model.json): a guided flow that shows what the model file declares,
 * asks for the input scaling, class names, the in-distribution images and an optional VAE, runs `fit` in the
 * engine worker behind a cancellable progress notification, selects the new pair as the pair picker does and
 * opens the result panel (held-out false alarms, score histograms). Needs a trusted workspace: a pair runs
 * its own model files. The answers are checked in createPairOptions.ts (no vscode, unit-tested).
 */
import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import * as vscode from 'vscode';
import type { Layout, VaeSpec } from '../inference/pair/manifest';
import type { Scaling } from '../inference/fit/fit';
import type { ModelFacts } from '../inference/fit/modelInspection';
import type { FitReport } from '../shared/fitReport';
import { falseAlarmSentence } from '../shared/fitReport';
import { FitResultPanel } from '../webviews/fitResultPanel';
import {
  buildFitRequest,
  type CreatePairAnswers,
  defaultPairFolder,
  describeScaling,
  isModelFile,
  likelihoodSpec,
  modelFactLines,
  modelProblem,
  modelStem,
  parseLabels,
  parseScaling,
  parseSize,
  withClassOutput,
  presetScaling,
  resolvePairFolder,
  type ScalingPresetId,
  scalingPresets,
  type VaeChoice,
  vaeTrainingEstimate,
} from './createPairOptions';
import type { EngineHost } from './engineHost';
import { activatePair, showTrustNeeded } from './pairPicker';
import { progressMessage, RateMeter } from './progressText';
import type { Services } from '../services/services';

const TITLE = 'Create OOD Pair';
const STEPS = 6;

/** The user closed a step (Escape): the flow ends quietly. */
class Dismissed extends Error {}

function step(n: number, what: string): string {
  return `${TITLE} (${n}/${STEPS}): ${what}`;
}

function oneLineOf(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

export function registerCreatePair(context: vscode.ExtensionContext, services: Services, host: EngineHost): void {
  const run = async (uri?: vscode.Uri) => {
    try {
      await createPairFlow(services, host, uri);
    } catch (err) {
      if (err instanceof Dismissed) return;
      // A FitError (kept by name across the worker thread) is fit refusing the user's input — too few images for
      // any test to fire, a model it cannot read — not a crash: its message is the whole story, without a stack.
      const refused = (err as Error).name === 'FitError';
      if (refused) services.log.error(`Create Pair: the pair was not created: ${(err as Error).message}`);
      else services.log.error(`Create Pair failed: ${(err as Error).stack ?? err}`);
      const text = refused ? `OOD Lens: the pair was not created — ${oneLineOf((err as Error).message)}` : `OOD Lens: could not create the pair: ${oneLineOf((err as Error).message)}`;
      const choice = await vscode.window.showErrorMessage(text, 'Show log');
      if (choice) services.log.show(true);
    }
  };
  context.subscriptions.push(
    vscode.commands.registerCommand('oodLens.createPair', (arg?: unknown) => run(arg instanceof vscode.Uri ? arg : undefined)),
    vscode.commands.registerCommand('oodLens.createPairFromExplorer', (uri?: vscode.Uri, uris?: vscode.Uri[]) => run(uris?.[0] ?? uri)),
    FitResultPanel.registerSerializer(services),
  );
}

async function pickFile(title: string, openLabel: string, filters: Record<string, string[]> | undefined, folders = false): Promise<string> {
  const picked = await vscode.window.showOpenDialog({
    title,
    openLabel,
    canSelectFiles: !folders,
    canSelectFolders: folders,
    canSelectMany: false,
    filters,
    defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
  });
  if (!picked?.length) throw new Dismissed();
  if (picked[0].scheme !== 'file') throw new Error(`only local files can be used (${picked[0].toString()})`);
  return picked[0].fsPath;
}

const MODEL_FILTERS = { 'Models (ONNX, TensorFlow.js model.json)': ['onnx', 'json'] };

/** The model file: from the Explorer / argument, the active editor, or an open dialog. */
async function classifierPath(uri: vscode.Uri | undefined): Promise<string> {
  let path = uri?.scheme === 'file' ? uri.fsPath : undefined;
  if (!path) {
    const active = vscode.window.activeTextEditor?.document.uri;
    if (active?.scheme === 'file' && isModelFile(active.fsPath)) path = active.fsPath;
  }
  path ??= await pickFile(step(1, 'choose the classifier'), 'Use Classifier', MODEL_FILTERS);
  if (existsSync(path) && statSync(path).isDirectory()) {
    if (existsSync(join(path, 'model.json'))) return join(path, 'model.json');
    throw new Error(`${path} is a folder without a model.json; choose an .onnx file or a TensorFlow.js model.json`);
  }
  if (!isModelFile(path)) throw new Error(`${path} is not a model OOD Lens reads: choose an .onnx file or a TensorFlow.js model.json`);
  return path;
}

type Pick<T> = vscode.QuickPickItem & { value?: T };

/** A quick pick that ends the flow on Escape. */
async function choose<T>(title: string, placeHolder: string, items: Pick<T>[]): Promise<T> {
  const picked = await vscode.window.showQuickPick(items, { title, placeHolder, ignoreFocusOut: true, matchOnDescription: true });
  if (!picked || picked.value === undefined) throw new Dismissed();
  return picked.value;
}

async function ask(options: vscode.InputBoxOptions): Promise<string> {
  const value = await vscode.window.showInputBox({ ignoreFocusOut: true, ...options });
  if (value === undefined) throw new Dismissed();
  return value;
}

/** Step 1: what was read from the model; Continue, or the reason it cannot be used. */
async function showFacts(facts: ModelFacts, services: Services): Promise<void> {
  const lines = modelFactLines(facts);
  const problem = modelProblem(facts);
  services.log.info(`Create Pair: ${facts.path} (${facts.format}, ${facts.backend}): ${lines.map((l) => `${l.label} — ${l.detail}`).join('; ')}`);
  if (problem) throw new Error(`${basename(facts.path)}: ${problem}`);
  const qp = vscode.window.createQuickPick<Pick<'continue'>>();
  qp.title = step(1, `what was read from ${basename(facts.path)}`);
  qp.placeholder = 'Check what OOD Lens read from the model file, then Continue';
  qp.ignoreFocusOut = true;
  const continueItem: Pick<'continue'> = { label: '$(arrow-right) Continue', description: 'choose the input scaling next', value: 'continue', alwaysShow: true };
  qp.items = [
    continueItem,
    { label: `Read from ${basename(facts.path)} (${facts.format})`, kind: vscode.QuickPickItemKind.Separator },
    ...lines.map((l): Pick<'continue'> => ({ label: `$(info) ${l.label}`, description: l.detail })),
  ];
  qp.activeItems = [continueItem];
  const accepted = await new Promise<boolean>((resolve) => {
    qp.onDidAccept(() => {
      // Fact rows are read-only: only Continue goes on.
      if (qp.selectedItems[0]?.value === 'continue') {
        resolve(true);
        qp.hide();
      } else qp.activeItems = [continueItem];
    });
    qp.onDidHide(() => resolve(false));
    qp.show();
  });
  qp.dispose();
  if (!accepted) throw new Dismissed();
}

async function askScaling(channels: 1 | 3, modelName: string): Promise<CreatePairAnswers['scaling']> {
  const presets = scalingPresets(channels);
  const id = await choose<ScalingPresetId>(
    step(2, 'input scaling'),
    `What does ${modelName} expect as input? Pixels 0..255 are mapped onto this`,
    presets.map((p) => ({ label: p.label, description: p.description, value: p.id })),
  );
  const preset = presetScaling(id, channels);
  if (preset) return preset;
  const text = await ask({
    title: step(2, 'custom input scaling'),
    prompt: `Pixels 0..255 map onto range, then (x − mean) / std${channels === 3 ? ' per channel (one value or three)' : ''}`,
    placeHolder: 'range=0,1 mean=0.1307 std=0.3081',
    value: 'range=0,1',
    validateInput: (v) => {
      const r = parseScaling(v, channels);
      return r.ok ? null : r.error;
    },
  });
  const parsed = parseScaling(text, channels);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

async function askLabels(classes: number): Promise<string[] | undefined> {
  const how = await choose<'indices' | 'names'>(step(3, 'class names'), `The model scores ${classes} classes`, [
    { label: `Class indices 0…${classes - 1}`, description: 'the names can be edited in ood-pair.json later', value: 'indices' },
    { label: 'Type the class names…', description: `${classes} names, in output order`, value: 'names' },
  ]);
  if (how === 'indices') return undefined;
  const text = await ask({
    title: step(3, 'class names'),
    prompt: `${classes} class names in the order of the model's outputs, separated by commas`,
    placeHolder: 'cat, dog, bird',
    validateInput: (v) => {
      const r = parseLabels(v, classes);
      return r.ok ? null : r.error;
    },
  });
  const parsed = parseLabels(text, classes);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

async function askData(): Promise<string> {
  const kind = await choose<'folder' | 'file'>(step(4, 'in-distribution images'), 'Images like the ones the model was trained on: fit calibrates on them and holds some out to measure false alarms', [
    { label: '$(folder) A folder of images…', description: 'PNG, JPEG, WebP… (subfolders included)', value: 'folder' },
    { label: '$(file) A dataset manifest or an IDX file…', description: 'CSV, TSV, JSONL or TXT listing image paths (labels used for accuracy); MNIST-style IDX', value: 'file' },
  ]);
  if (kind === 'folder') return pickFile(step(4, 'folder of in-distribution images'), 'Use Images', undefined, true);
  return pickFile(step(4, 'dataset manifest or IDX file'), 'Use Images', { 'Dataset manifests and IDX': ['csv', 'tsv', 'jsonl', 'ndjson', 'txt', 'gz', 'idx3-ubyte'], 'All files': ['*'] });
}

async function askVae(facts: ModelFacts): Promise<{ vae: VaeChoice; likelihood?: VaeSpec['likelihood'] }> {
  const kind = await choose<VaeChoice['kind']>(step(5, 'density model'), 'A VAE adds likelihood tests (ELBO, complexity-corrected S) and a reconstruction to the classifier\'s own tests', [
    { label: '$(sparkle) Train a VAE on my images', description: vaeTrainingEstimate(facts), value: 'train' },
    { label: '$(circle-slash) No VAE', description: 'a classifier-only pair: its confidence and feature tests', value: 'none' },
    { label: '$(file) A VAE model…', description: 'one file: image → reconstruction, mu, logvar', value: 'single' },
    { label: '$(files) An encoder and a decoder…', description: 'two files: image → mu, logvar; z → reconstruction', value: 'split' },
  ]);
  if (kind === 'none' || kind === 'train') return { vae: { kind } };
  const vae: VaeChoice =
    kind === 'single'
      ? { kind, path: await pickFile(step(5, 'the VAE model'), 'Use VAE', MODEL_FILTERS) }
      : { kind, encoder: await pickFile(step(5, 'the encoder'), 'Use Encoder', MODEL_FILTERS), decoder: await pickFile(step(5, 'the decoder'), 'Use Decoder', MODEL_FILTERS) };
  const type = await choose<VaeSpec['likelihood']['type']>(step(5, "the VAE's likelihood"), 'How the decoder models pixels (the VAE sees pixels on [0, 1])', [
    { label: 'Bernoulli', description: 'binary cross-entropy decoders (most MNIST VAEs)', value: 'bernoulli' },
    { label: 'Continuous Bernoulli', description: 'Loaiza-Ganem & Cunningham 2019', value: 'continuous-bernoulli' },
    { label: 'Gaussian…', description: 'MSE decoders: asks for σ', value: 'gaussian' },
    { label: 'Discretised logistic', description: 'PixelCNN-style decoders', value: 'discretized-logistic' },
  ]);
  let sigma: string | undefined;
  if (type === 'gaussian') {
    sigma = await ask({
      title: step(5, 'Gaussian σ'),
      prompt: "The decoder's standard deviation in [0, 1] pixel units",
      value: '0.1',
      validateInput: (v) => {
        const r = likelihoodSpec('gaussian', v);
        return r.ok ? null : r.error;
      },
    });
  }
  const likelihood = likelihoodSpec(type, sigma);
  if (!likelihood.ok) throw new Error(likelihood.error);
  return { vae, likelihood: likelihood.value };
}

async function askFolder(modelPath: string): Promise<{ out: string; force: boolean }> {
  const workspace = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  const holdsPair = (f: string) => existsSync(join(f, 'ood-pair.json'));
  const suggested = defaultPairFolder(modelPath, workspace, holdsPair);
  const shown = workspace && suggested.startsWith(`${workspace}/`) ? suggested.slice(workspace.length + 1) : suggested;
  const text = await ask({
    title: step(6, 'where to write the pair'),
    prompt: `The pair folder (${workspace ? 'relative to the workspace, or absolute' : 'an absolute path'}): the models are copied there with ood-pair.json, calibration.json and split.json`,
    value: shown,
    validateInput: (v) => {
      const r = resolvePairFolder(v, workspace);
      if (!r.ok) return r.error;
      if (existsSync(r.value) && !statSync(r.value).isDirectory()) return `${r.value} is a file, not a folder`;
      return holdsPair(r.value) ? { message: 'this folder already holds a pair: it will be replaced (you will be asked to confirm)', severity: vscode.InputBoxValidationSeverity.Warning } : null;
    },
  });
  const r = resolvePairFolder(text, workspace);
  if (!r.ok) throw new Error(r.error);
  let force = false;
  if (holdsPair(r.value)) {
    const answer = await vscode.window.showWarningMessage(`${r.value} already holds a pair. Replace it?`, { modal: true }, 'Replace');
    if (answer !== 'Replace') throw new Dismissed();
    force = true;
  }
  return { out: r.value, force };
}

const PHASE_TEXT: Record<string, string> = {
  'reading models': 'reading the models…',
  'listing images': 'finding the images…',
  'checking the classifier': 'checking that the classifier is fed right (the usual scalings, one image alone vs in a batch)…',
  'fitting detectors': 'fitting the feature detectors (KNN, Mahalanobis)…',
  'training VAE': 'reading the images to train the VAE on…',
  writing: 'writing the pair…',
};

async function runFit(services: Services, answers: CreatePairAnswers): Promise<FitReport | undefined> {
  const request = buildFitRequest(answers);
  const name = basename(answers.out);
  services.log.info(`Create Pair: fit ${JSON.stringify(request)}`);
  return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `OOD Lens: creating pair ${name}`, cancellable: true }, async (progress, token) => {
    progress.report({ message: 'starting…' });
    const meter = new RateMeter();
    let lastPct = 0;
    try {
      return await services.engine.fit(
        request,
        (event) => {
          if (event.type === 'decision') services.log.info(`fit: ${event.line}`);
          else if (event.type === 'notice') services.log.warn(`fit: ${event.message}`);
          else if (event.progress.phase === 'scoring' && event.progress.total > 0) {
            const { done, total } = event.progress;
            meter.update(done);
            const pct = (100 * done) / total;
            progress.report({ message: `scoring ${progressMessage(done, total, 0, meter)}`, increment: Math.max(0, pct - lastPct) });
            lastPct = pct;
          } else if (event.progress.phase === 'training VAE' && event.progress.vae && event.progress.total > 0) {
            const { epoch, epochs, loss, secondsLeft } = event.progress.vae;
            const pct = (100 * event.progress.done) / event.progress.total;
            progress.report({ message: `training the VAE: epoch ${epoch} of ${epochs}, loss ${loss.toFixed(1)}, about ${secondsLeft < 90 ? `${Math.round(secondsLeft)} s` : `${Math.round(secondsLeft / 60)} min`} left`, increment: Math.max(0, pct - lastPct) });
            lastPct = pct;
          } else if (event.progress.phase === 'fitting detectors' && event.progress.total > 0) {
            progress.report({ message: `fitting the feature detectors… ${event.progress.done.toLocaleString('en-US')} of ${event.progress.total.toLocaleString('en-US')} images` });
          } else progress.report({ message: PHASE_TEXT[event.progress.phase] ?? `${event.progress.phase}…` });
        },
        token,
      );
    } catch (err) {
      if (token.isCancellationRequested) {
        services.log.info(`Create Pair: cancelled (${(err as Error).message})`);
        void vscode.window.showInformationMessage(`OOD Lens: creating pair ${name} was cancelled; nothing was written.`);
        return undefined;
      }
      throw err;
    }
  });
}

/** Where the model file leaves the layout or the size open, asks for them (then the model is read again). */
async function askOpenDimensions(facts: ModelFacts): Promise<{ layout?: Layout; size?: { width: number; height: number } }> {
  const shape = facts.inputs[0]?.shape?.map((d) => d ?? '?').join(', ');
  const given: { layout?: Layout; size?: { width: number; height: number } } = {};
  if (facts.imageNeeds.includes('layout') && facts.inputs[0]?.shape?.length === 2) {
    // Flat vectors: fed the image flattened (layout "flat"); only the size it was made from is asked.
    given.layout = 'flat';
  } else if (facts.imageNeeds.includes('layout')) {
    given.layout = await choose<'NCHW' | 'NHWC'>(step(1, 'input layout'), `The input "${facts.inputs[0]?.name}" [${shape}] does not say where its channels are`, [
      { label: 'NCHW', description: 'channels first — PyTorch, most ONNX exports', value: 'NCHW' },
      { label: 'NHWC', description: 'channels last — TensorFlow / Keras', value: 'NHWC' },
    ]);
  }
  if (facts.imageNeeds.includes('size')) {
    const text = await ask({
      title: step(1, 'input size'),
      prompt: `The input "${facts.inputs[0]?.name}" [${shape}] leaves its size free: the size images are resized to (what the model was trained on)`,
      placeHolder: '224x224',
      validateInput: (v) => {
        const r = parseSize(v);
        return r.ok ? null : r.error;
      },
    });
    const r = parseSize(text);
    if (!r.ok) throw new Error(r.error);
    given.size = r.value;
  }
  return given;
}

/** The numbers a model's inputs besides the image are fed on every run (fit's --const NAME=VALUE). */
async function askConstants(facts: ModelFacts): Promise<Record<string, number>> {
  const constants: Record<string, number> = {};
  for (const t of facts.extraInputs ?? []) {
    const text = await ask({
      title: step(1, `input "${t.name}"`),
      prompt: `${basename(facts.path)} has an input "${t.name}" [${t.shape?.map((d) => d ?? '?').join(', ') ?? ''}] ${t.dtype} besides the image: the number to feed it on every run`,
      placeHolder: '1',
      validateInput: (v) => (v.trim() && Number.isFinite(Number(v.trim())) ? null : 'a number, e.g. 1'),
    });
    constants[t.name] = Number(text.trim());
  }
  return constants;
}

export async function createPairFlow(services: Services, host: EngineHost, uri?: vscode.Uri): Promise<void> {
  if (!services.isTrusted()) return showTrustNeeded('Creating a pair from your own model');
  const classifier = await classifierPath(uri);
  let constants: Record<string, number> | undefined;
  const read = (options?: { layout?: Layout; size?: { width: number; height: number } }) =>
    vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `OOD Lens: reading ${basename(classifier)}…` }, () => services.engine.inspectModel(classifier, { ...options, constants }));
  let facts = await read();
  if (!facts.image && facts.extraInputs?.length) {
    // Inputs besides the image (a temperature): each fixed to a number, then the model is read again.
    constants = await askConstants(facts);
    facts = await read();
  }
  let dimensions: { layout?: Layout; size?: { width: number; height: number } } = {};
  if (!facts.image && facts.imageNeeds.length) {
    dimensions = await askOpenDimensions(facts);
    facts = await read(dimensions);
  }
  if (facts.image && !facts.classOutput && facts.classCandidates.length > 1) {
    const name = await choose<string>(
      step(1, 'class scores'),
      `${basename(classifier)} has several outputs with one value per something: which one holds the class scores?`,
      facts.classCandidates.map((c) => ({ label: c.name, description: `${c.classes} values per image, ${c.kind}`, value: c.name })),
    );
    facts = withClassOutput(facts, name);
  }
  await showFacts(facts, services);
  const modelName = basename(classifier);
  // A uint8 input takes the 8-bit pixels as they are: there is no scaling to choose.
  const scaling: Scaling = facts.image!.dtype === 'uint8' ? { range: [0, 255] } : await askScaling(facts.image!.channels, modelName);
  services.log.info(`Create Pair: classifier input scaling ${describeScaling(scaling)}`);
  const labels = await askLabels(facts.classOutput!.classes);
  const data = await askData();
  const { vae, likelihood } = await askVae(facts);
  const { out, force } = await askFolder(classifier);
  const answers: CreatePairAnswers = { classifier, facts, scaling, labels, data, vae, likelihood, out, force, ...dimensions, ...(constants ? { constants } : {}) };
  const report = await runFit(services, answers);
  if (!report) return;
  services.log.info(`Create Pair: wrote ${report.manifestPath} in ${report.seconds.toFixed(1)} s; ${falseAlarmSentence(report)}`);
  let selected = true;
  try {
    await activatePair(services, host, report.manifestPath, `pair ${report.name} created`);
  } catch (err) {
    selected = false;
    services.log.error(`Create Pair: the new pair was written but could not be loaded: ${(err as Error).message}`);
  }
  await FitResultPanel.show(services, report, { selected });
  if (report.failed) {
    void vscode.window.showWarningMessage(`OOD Lens: ${report.failed} of the images could not be scored and were left out (first: ${report.failures[0]?.path}: ${report.failures[0]?.error}).`, 'Show log').then((c) => c && services.log.show(true));
  }
}

