/**
 * "OOD Lens: Create Pair…" (command palette, walkthroughs) and "Create OOD pair from this model" (Explorer
 * context menu on .onnx files and TF.js model.json): a guided flow that shows what the model file declares,
 * asks for the input scaling, class names, the in-distribution images and an optional VAE, runs `fit` in the
 * engine worker behind a cancellable progress notification, selects the new pair as the pair picker does and
 * opens the result panel (held-out false alarms, score histograms). Needs a trusted workspace: a pair runs
 * its own model files. The answers are checked in createPairOptions.ts (no vscode, unit-tested).
 */
import { existsSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import * as vscode from 'vscode';
import type { Layout, VaeSpec } from '../inference/pair/manifest';
import type { Scaling } from '../inference/fit/fit';
import type { ModelFacts } from '../inference/fit/modelInspection';
import type { FitReport } from '../shared/fitReport';
import { falseAlarmSentence } from '../shared/fitReport';
import type { DataSample, PreviewResult } from '../shared/engineProtocol';
import { FitResultPanel } from '../webviews/fitResultPanel';
import { makeNonce } from '../webviews/html';
import { buildPreviewHtml } from '../webviews/previewHtml';
import {
  buildFitRequest,
  declaredSize,
  defaultSize,
  describeDeclared,
  describeImageSizes,
  firstMissingFolder,
  type RememberedAnswers,
  sizeConflict,
  paddingOffer,
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
  scalingWords,
  scalingPresets,
  type VaeChoice,
  vaeTrainingEstimate,
} from './createPairOptions';
import type { EngineHost } from './engineHost';
import { activatePair, showTrustNeeded } from './pairPicker';
import { progressMessage, RateMeter } from './progressText';
import type { Services } from '../services/services';

const TITLE = 'Create OOD Pair';
const STEPS = 7;
/** workspaceState key of the answers given per model (a retry starts from them). */
const ANSWERS_KEY = 'oodLens.createPair.answers';

/** The user closed a step (Escape): the flow ends quietly. */
class Dismissed extends Error {}

function step(n: number, what: string): string {
  return `${TITLE} (${n}/${STEPS}): ${what}`;
}

function oneLineOf(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

export function registerCreatePair(context: vscode.ExtensionContext, services: Services, host: EngineHost): void {
  const run = async (uri?: vscode.Uri): Promise<void> => {
    let classifier: string | undefined;
    try {
      await createPairFlow(services, host, uri, (path) => (classifier = path));
    } catch (err) {
      if (err instanceof Dismissed) return;
      // A FitError (kept by name across the worker thread) is fit refusing the user's input — too few images for
      // any test to fire, a model it cannot read — not a crash: its message is the whole story, without a stack.
      const refused = (err as Error).name === 'FitError';
      if (refused) services.log.error(`Create Pair: the pair was not created: ${(err as Error).message}`);
      else services.log.error(`Create Pair failed: ${(err as Error).stack ?? err}`);
      const text = refused ? `OOD Lens: the pair was not created — ${oneLineOf((err as Error).message)}` : `OOD Lens: could not create the pair: ${oneLineOf((err as Error).message)}`;
      // The answers are remembered: Try Again starts from them.
      const choice = await vscode.window.showErrorMessage(text, ...(classifier ? ['Try Again'] : []), 'Show log');
      if (choice === 'Show log') services.log.show(true);
      if (choice === 'Try Again' && classifier) await run(vscode.Uri.file(classifier));
    }
  };
  context.subscriptions.push(
    vscode.commands.registerCommand('oodLens.createPair', (arg?: unknown) => run(arg instanceof vscode.Uri ? arg : undefined)),
    vscode.commands.registerCommand('oodLens.createPairFromExplorer', (uri?: vscode.Uri, uris?: vscode.Uri[]) => run(uris?.[0] ?? uri)),
    FitResultPanel.registerSerializer(services),
  );
}

/** The answers given for one model, kept in the workspace's state. */
class AnswerMemory {
  constructor(private readonly state: vscode.Memento, private readonly classifier: string) {}

  get(): RememberedAnswers {
    return this.state.get<Record<string, RememberedAnswers>>(ANSWERS_KEY, {})[this.classifier] ?? {};
  }

  async set(answers: RememberedAnswers): Promise<void> {
    const all = this.state.get<Record<string, RememberedAnswers>>(ANSWERS_KEY, {});
    await this.state.update(ANSWERS_KEY, { ...all, [this.classifier]: { ...all[this.classifier], ...answers } });
  }
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

/** A quick pick that ends the flow on Escape; the previous answer, when given, is the highlighted row. */
async function choose<T>(title: string, placeHolder: string, items: Pick<T>[], previous?: T): Promise<T> {
  const qp = vscode.window.createQuickPick<Pick<T>>();
  qp.title = title;
  qp.placeholder = placeHolder;
  qp.ignoreFocusOut = true;
  qp.matchOnDescription = true;
  qp.items = items.map((i) => (previous !== undefined && i.value === previous ? { ...i, detail: i.detail ?? '$(history) your answer last time' } : i));
  const remembered = qp.items.find((i) => previous !== undefined && i.value === previous);
  if (remembered) qp.activeItems = [remembered];
  const picked = await new Promise<Pick<T> | undefined>((resolve) => {
    qp.onDidAccept(() => {
      const item = qp.selectedItems[0] ?? qp.activeItems[0];
      if (item?.value === undefined) return;
      resolve(item);
      qp.hide();
    });
    qp.onDidHide(() => resolve(undefined));
    qp.show();
  });
  qp.dispose();
  if (!picked || picked.value === undefined) throw new Dismissed();
  return picked.value;
}

async function ask(options: vscode.InputBoxOptions): Promise<string> {
  const value = await vscode.window.showInputBox({ ignoreFocusOut: true, ...options });
  if (value === undefined) throw new Dismissed();
  return value;
}

/** Step 1: what was read from the model; Continue, or the reason it cannot be used. */
async function showFacts(facts: ModelFacts, services: Services, sample: DataSample): Promise<void> {
  const lines = modelFactLines(facts);
  lines.push({ label: `your images: ${describeImageSizes(sample)}`, detail: `${sample.total.toLocaleString('en-US')} in the data` });
  // A size the model fixes and the images contradict: said here, since nothing is asked about it.
  const conflict = facts.image ? sizeConflict(facts.image, sample) : null;
  if (conflict) lines.push({ label: `$(warning) the images do not fit ${facts.image!.width}×${facts.image!.height}`, detail: conflict });
  const problem = modelProblem(facts);
  services.log.info(`Create Pair: ${facts.path} (${facts.format}, ${facts.backend}): ${lines.map((l) => `${l.label} — ${l.detail}`).join('; ')}`);
  if (problem) throw new Error(`${basename(facts.path)}: ${problem}`);
  const qp = vscode.window.createQuickPick<Pick<'continue'>>();
  qp.title = step(2, `what was read from ${basename(facts.path)}`);
  qp.placeholder = 'Check what OOD Lens read from the model file, then Continue';
  qp.ignoreFocusOut = true;
  const continueItem: Pick<'continue'> = { label: '$(arrow-right) Continue', description: 'choose the input scaling next', value: 'continue', alwaysShow: true };
  qp.items = [
    continueItem,
    { label: `Read from ${basename(facts.path)} (${facts.format})`, kind: vscode.QuickPickItemKind.Separator },
    ...lines.map((l): Pick<'continue'> => ({ label: l.label.startsWith('$(') ? l.label : `$(info) ${l.label}`, description: l.detail })),
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

async function askScaling(channels: 1 | 3, modelName: string, memory: AnswerMemory): Promise<CreatePairAnswers['scaling']> {
  const last = memory.get();
  const presets = scalingPresets(channels);
  const id = await choose<ScalingPresetId>(
    step(3, 'input scaling'),
    `What does ${modelName} expect as input? x is a pixel 0..255; the model card usually says it as one of these`,
    presets.map((p) => ({ label: p.label, description: p.description, value: p.id })),
    last.scaling,
  );
  const preset = presetScaling(id, channels);
  if (preset) {
    await memory.set({ scaling: id });
    return preset;
  }
  const count = channels === 3 ? 'mean and std: one value for all three channels, or three (R, G, B)' : 'mean and std: one value (grey input)';
  const text = await ask({
    title: step(3, 'custom input scaling'),
    prompt: `Pixels 0..255 map onto range, then (x − mean) / std; ${count}. Checked as you type.`,
    placeHolder: channels === 3 ? 'range=0,1 mean=0.485,0.456,0.406 std=0.229,0.224,0.225' : 'range=0,1 mean=0.1307 std=0.3081',
    value: last.customScaling ?? 'range=0,1',
    validateInput: (v) => {
      const r = parseScaling(v, channels);
      return r.ok ? null : r.error;
    },
  });
  const parsed = parseScaling(text, channels);
  if (!parsed.ok) throw new Error(parsed.error);
  await memory.set({ scaling: id, customScaling: text });
  return parsed.value;
}

async function askLabels(classes: number, memory: AnswerMemory): Promise<string[] | undefined> {
  const last = memory.get();
  const how = await choose<'indices' | 'names'>(step(4, 'class names'), `The model scores ${classes} classes`, [
    { label: `Class indices 0…${classes - 1}`, description: 'the names can be edited in ood-pair.json later', value: 'indices' },
    { label: 'Type the class names…', description: `${classes} names, in output order`, value: 'names' },
  ], last.labels === undefined ? (last.scaling ? 'indices' : undefined) : 'names');
  if (how === 'indices') {
    await memory.set({ labels: undefined });
    return undefined;
  }
  const text = await ask({
    title: step(4, 'class names'),
    value: last.labels,
    prompt: `${classes} class names in the order of the model's outputs, separated by commas`,
    placeHolder: 'cat, dog, bird',
    validateInput: (v) => {
      const r = parseLabels(v, classes);
      return r.ok ? null : r.error;
    },
  });
  const parsed = parseLabels(text, classes);
  if (!parsed.ok) throw new Error(parsed.error);
  await memory.set({ labels: text });
  return parsed.value;
}

async function askData(memory: AnswerMemory): Promise<string> {
  const last = memory.get().data;
  const kind = await choose<'folder' | 'file' | 'last'>(step(2, 'in-distribution images'), 'Images like the ones the model was trained on: fit calibrates on them and holds some out to measure false alarms', [
    ...(last && existsSync(last) ? [{ label: `$(history) The same images as last time`, description: vscode.workspace.asRelativePath(last), value: 'last' as const }] : []),
    { label: '$(folder) A folder of images…', description: 'PNG, JPEG, WebP… (subfolders included)', value: 'folder' },
    { label: '$(file) A dataset manifest or an IDX file…', description: 'CSV, TSV, JSONL or TXT listing image paths (labels used for accuracy); MNIST-style IDX', value: 'file' },
  ]);
  const data =
    kind === 'last'
      ? last!
      : kind === 'folder'
        ? await pickFile(step(2, 'folder of in-distribution images'), 'Use Images', undefined, true)
        : await pickFile(step(2, 'dataset manifest or IDX file'), 'Use Images', { 'Dataset manifests and IDX': ['csv', 'tsv', 'jsonl', 'ndjson', 'txt', 'gz', 'idx3-ubyte'], 'All files': ['*'] });
  await memory.set({ data });
  return data;
}

async function askVae(facts: ModelFacts, memory: AnswerMemory): Promise<{ vae: VaeChoice; likelihood?: VaeSpec['likelihood'] }> {
  const kind = await choose<VaeChoice['kind']>(step(6, 'density model'), "A VAE adds likelihood tests (is the image likely under the training data? ELBO, complexity-corrected S) and a reconstruction to the tests on the classifier's own features and confidence", [
    { label: '$(sparkle) Train a VAE on my images', description: vaeTrainingEstimate(facts), value: 'train' },
    { label: '$(circle-slash) No VAE', description: "a classifier-only pair: judged by how far the classifier's features are from the training images' (KNN) and by its confidence", value: 'none' },
    { label: '$(file) A VAE model…', description: 'one file: image → reconstruction, mu, logvar', value: 'single' },
    { label: '$(files) An encoder and a decoder…', description: 'two files: image → mu, logvar; z → reconstruction', value: 'split' },
  ], memory.get().vae);
  await memory.set({ vae: kind });
  if (kind === 'none' || kind === 'train') return { vae: { kind } };
  const vae: VaeChoice =
    kind === 'single'
      ? { kind, path: await pickFile(step(6, 'the VAE model'), 'Use VAE', MODEL_FILTERS) }
      : { kind, encoder: await pickFile(step(6, 'the encoder'), 'Use Encoder', MODEL_FILTERS), decoder: await pickFile(step(6, 'the decoder'), 'Use Decoder', MODEL_FILTERS) };
  const type = await choose<VaeSpec['likelihood']['type']>(step(6, "the VAE's likelihood"), 'How the decoder models pixels (the VAE sees pixels on [0, 1])', [
    { label: 'Bernoulli', description: 'binary cross-entropy decoders (most MNIST VAEs)', value: 'bernoulli' },
    { label: 'Continuous Bernoulli', description: 'Loaiza-Ganem & Cunningham 2019', value: 'continuous-bernoulli' },
    { label: 'Gaussian…', description: 'MSE decoders: asks for σ', value: 'gaussian' },
    { label: 'Discretised logistic', description: 'PixelCNN-style decoders', value: 'discretized-logistic' },
  ]);
  let sigma: string | undefined;
  if (type === 'gaussian') {
    sigma = await ask({
      title: step(6, 'Gaussian σ'),
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

async function askFolder(modelPath: string, memory: AnswerMemory): Promise<{ out: string; force: boolean }> {
  const workspace = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  const holdsPair = (f: string) => existsSync(join(f, 'ood-pair.json'));
  const suggested = defaultPairFolder(modelPath, workspace, holdsPair);
  const last = memory.get().out;
  // The last answer (a retry), unless a pair was made there since; else the suggestion.
  const lastFolder = last ? resolvePairFolder(last, workspace) : undefined;
  const shown = last && lastFolder?.ok && !holdsPair(lastFolder.value) ? last : workspace && suggested.startsWith(`${workspace}/`) ? suggested.slice(workspace.length + 1) : suggested;
  const text = await ask({
    title: step(7, 'where to write the pair'),
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
  await memory.set({ out: text });
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

type Dimensions = { layout?: Layout; size?: { width: number; height: number } };

/**
 * Where the model file leaves the layout or the size open, asks for them (then the model is read again). The
 * size is asked as width × height, naming what the model declares, with the images' own size as the default;
 * a size whose aspect contradicts the images is questioned as it is typed and once more when accepted.
 */
async function askOpenDimensions(facts: ModelFacts, sample: DataSample, memory: AnswerMemory, only?: 'size'): Promise<Dimensions> {
  const input = facts.inputs[0];
  const shape = input?.shape?.map((d) => d ?? '?').join(', ');
  const last = memory.get();
  const given: Dimensions = {};
  if (facts.imageNeeds.includes('layout') && input?.shape?.length === 2) {
    // Flat vectors: fed the image flattened (layout "flat"); only the size it was made from is asked.
    given.layout = 'flat';
  } else if (facts.imageNeeds.includes('layout') && only !== 'size') {
    given.layout = await choose<'NCHW' | 'NHWC'>(step(2, 'input layout'), `The input "${input?.name}" [${shape}] does not say where its channels are`, [
      { label: 'NCHW', description: 'channels first — PyTorch, most ONNX exports', value: 'NCHW' },
      { label: 'NHWC', description: 'channels last — TensorFlow / Keras', value: 'NHWC' },
    ], last.layout);
    await memory.set({ layout: given.layout });
  } else if (last.layout && facts.imageNeeds.includes('layout')) given.layout = last.layout;
  if (facts.imageNeeds.includes('size')) {
    const declared = declaredSize(input?.shape, given.layout ?? (facts.imageNeeds.includes('layout') ? undefined : input?.shape?.[1] === 1 || input?.shape?.[1] === 3 ? 'NCHW' : 'NHWC'));
    const fromImages = defaultSize(sample, declared);
    const value = last.size ?? (fromImages ? `${fromImages.width}x${fromImages.height}` : '');
    for (;;) {
      const text = await ask({
        title: step(2, 'input size, width × height'),
        prompt: `The input "${input?.name}" [${shape}] leaves its size free (${describeDeclared(declared)}). Images are resized to this WIDTH × HEIGHT — the size the model was trained on. Your images: ${describeImageSizes(sample)}.`,
        placeHolder: fromImages ? `${fromImages.width}x${fromImages.height} (width × height, as your images)` : 'width x height, e.g. 224x224',
        value,
        validateInput: (v) => {
          const r = parseSize(v, declared);
          if (!r.ok) return r.error;
          const conflict = sizeConflict(r.value, sample);
          return conflict ? { message: conflict, severity: vscode.InputBoxValidationSeverity.Warning } : null;
        },
      });
      const r = parseSize(text, declared);
      if (!r.ok) throw new Error(r.error);
      const conflict = sizeConflict(r.value, sample);
      if (conflict) {
        const swapped = `Use ${r.value.height}×${r.value.width}`;
        const answer = await vscode.window.showWarningMessage(`OOD Lens: ${conflict}`, { modal: true }, swapped, `Use ${r.value.width}×${r.value.height} anyway`, 'Type Again');
        if (answer === undefined) throw new Dismissed();
        if (answer === 'Type Again') continue;
        if (answer === swapped) r.value = { width: r.value.height, height: r.value.width };
      }
      given.size = r.value;
      await memory.set({ size: `${r.value.width}x${r.value.height}` });
      break;
    }
  }
  return given;
}

/** The preview panel, reused while the user changes answers; closed when the flow goes on to fit (or ends). */
class PreviewPanel {
  private panel?: vscode.WebviewPanel;

  constructor(private readonly services: Services) {}

  show(preview: PreviewResult, o: { modelName: string; scaling: CreatePairAnswers['scaling']; sizeWarning: string | null; labels?: string[] }): void {
    const ext = this.services.context.extensionUri;
    const title = `Create Pair preview: ${o.modelName}`;
    this.panel ??= vscode.window.createWebviewPanel('oodLens.createPairPreview', title, { viewColumn: vscode.ViewColumn.Active, preserveFocus: true }, { enableScripts: false, localResourceRoots: [vscode.Uri.joinPath(ext, 'media')] });
    const w = this.panel.webview;
    this.panel.title = title;
    w.html = buildPreviewHtml({ cspSource: w.cspSource, nonce: makeNonce(), styleUri: w.asWebviewUri(vscode.Uri.joinPath(ext, 'media', 'preview.css')).toString(), title, modelName: o.modelName, scalingText: scalingWords(o.scaling), sizeWarning: o.sizeWarning, labels: o.labels }, preview);
  }

  dispose(): void {
    this.panel?.dispose();
    this.panel = undefined;
  }
}

/** Whether to select the new pair in this workspace (written to settings) — asked, never assumed. */
async function askUse(name: string, memory: AnswerMemory): Promise<boolean> {
  const inWorkspace = !!vscode.workspace.workspaceFolders?.length;
  const where = inWorkspace ? '.vscode/settings.json' : 'your user settings';
  const use = await choose<'use' | 'keep'>(step(7, 'after fitting'), `Use ${name} once it is made? That writes "oodLens.pair" to ${where}`, [
    { label: `$(check) Use it${inWorkspace ? ' in this workspace' : ''}`, description: `writes "oodLens.pair" to ${where}`, value: 'use' },
    { label: '$(circle-slash) Only write the pair folder', description: 'no settings are changed; choose it later with Select Pair…', value: 'keep' },
  ], memory.get().useInWorkspace === undefined ? undefined : memory.get().useInWorkspace ? 'use' : 'keep');
  await memory.set({ useInWorkspace: use === 'use' });
  return use === 'use';
}

/** Removes what a failed fit left: the folders it made, when they are empty (never a file). */
function removeLeftovers(top: string | undefined, out: string, log: vscode.LogOutputChannel): void {
  if (!top) return;
  for (let f = out; ; f = dirname(f)) {
    try {
      if (existsSync(f) && readdirSync(f).length === 0) rmdirSync(f);
    } catch (err) {
      log.warn(`Create Pair: could not remove ${f}: ${(err as Error).message}`);
      return;
    }
    if (f === top || dirname(f) === f) return;
  }
}

/** The numbers a model's inputs besides the image are fed on every run (fit's --const NAME=VALUE). */
/** Padded into the model's input, or stretched to it (fit's --padding), for images smaller by an even margin. */
async function askPadding(model: { width: number; height: number }, sample: DataSample, offer: number, memory: AnswerMemory): Promise<number> {
  const image = sample.sizes[0];
  const padding = await choose<number>(
    step(2, 'fitting the images into the input'),
    `Your ${image.width}×${image.height} images are smaller than the model's ${model.width}×${model.height} input. How was it trained?`,
    [
      { label: `$(screen-normal) Padded: ${image.width}×${image.height} centred in ${model.width}×${model.height}`, description: `a ${offer}-pixel border of the background on each side (LeNet style; fit --padding ${offer})`, value: offer },
      { label: `$(screen-full) Stretched to ${model.width}×${model.height}`, description: 'resized to the whole input', value: 0 },
    ],
    memory.get().padding,
  );
  await memory.set({ padding });
  return padding;
}

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

export async function createPairFlow(services: Services, host: EngineHost, uri?: vscode.Uri, onClassifier?: (path: string) => void): Promise<void> {
  if (!services.isTrusted()) return showTrustNeeded('Creating a pair from your own model');
  const classifier = await classifierPath(uri);
  onClassifier?.(classifier);
  const memory = new AnswerMemory(services.context.workspaceState, classifier);
  const modelName = basename(classifier);
  let constants: Record<string, number> | undefined;
  const read = (options?: Dimensions) =>
    vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `OOD Lens: reading ${modelName}…` }, () => services.engine.inspectModel(classifier, { ...options, constants }));
  let facts = await read();
  if (!facts.image && facts.extraInputs?.length) {
    // Inputs besides the image (a temperature): each fixed to a number, then the model is read again.
    constants = await askConstants(facts);
    facts = await read();
  }
  // The images first: their size is the default where the model leaves it open, and is checked against a fixed one.
  const data = await askData(memory);
  const sample = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'OOD Lens: reading a sample of the images…' }, () => services.engine.sampleData([data]));
  services.log.info(`Create Pair: ${data}: ${sample.total} images; sampled sizes ${describeImageSizes(sample)}${sample.unreadable.length ? `; unreadable: ${sample.unreadable.map((u) => `${u.path}: ${u.error}`).join('; ')}` : ''}`);
  if (!sample.first) throw new Error(`${data}: no image could be read${sample.unreadable[0] ? ` (${sample.unreadable[0].path}: ${sample.unreadable[0].error})` : ' (the folder holds no images)'}`);
  let dimensions: Dimensions = {};
  const sizeOpen = !facts.image && facts.imageNeeds.includes('size');
  if (!facts.image && facts.imageNeeds.length) {
    dimensions = await askOpenDimensions(facts, sample, memory);
    facts = await read(dimensions);
  }
  if (facts.image && !facts.classOutput && facts.classCandidates.length > 1) {
    const name = await choose<string>(
      step(2, 'class scores'),
      `${modelName} has several outputs with one value per something: which one holds the class scores?`,
      facts.classCandidates.map((c) => ({ label: c.name, description: `${c.classes} values per image, ${c.kind}`, value: c.name })),
    );
    facts = withClassOutput(facts, name);
  }
  await showFacts(facts, services, sample);
  // Images smaller than a fixed input by one even margin (28×28 into 32×32): padded as LeNet-style models were trained, or stretched.
  const offer = !sizeOpen && facts.image ? paddingOffer(facts.image, sample) : null;
  const padding = offer ? await askPadding(facts.image!, sample, offer, memory) : 0;
  // A uint8 input takes the 8-bit pixels as they are: there is no scaling to choose.
  const uint8 = facts.image!.dtype === 'uint8';
  let scaling: Scaling = uint8 ? { range: [0, 255] } : await askScaling(facts.image!.channels, modelName, memory);
  services.log.info(`Create Pair: classifier input scaling ${describeScaling(scaling)}`);
  const labels = await askLabels(facts.classOutput!.classes, memory);

  // The preview: one image as the model will see it, before anything is fitted or written.
  const preview = new PreviewPanel(services);
  try {
    // A model fed more than the image (constants) or a flat vector is not previewed: fit's own checks still run.
    const previewable = !constants && dimensions.layout !== 'flat';
    if (!previewable) services.log.info('Create Pair: no preview for a model with inputs besides the image or a flat input');
    for (; previewable; ) {
      let shown: PreviewResult;
      try {
        shown = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `OOD Lens: running ${modelName} on ${basename(sample.first)}…` }, () =>
          services.engine.preview({ classifier, image: sample.first!, scaling, ...dimensions, ...(padding ? { padding } : {}), output: facts.classOutput!.name, outputKind: facts.classOutput!.kind, labels }),
        );
      } catch (err) {
        // The preview is a look before fitting, not a gate: fit reads and checks the model again.
        services.log.warn(`Create Pair: the preview of ${sample.first} could not be made: ${(err as Error).message}`);
        void vscode.window.showWarningMessage(`OOD Lens: the preview could not be made (${oneLineOf((err as Error).message)}); the fit checks the model itself.`);
        break;
      }
      const sizeWarning = shown.source ? sizeConflict({ width: shown.width, height: shown.height }, { sampled: 1, sizes: [{ ...shown.source, count: 1 }] }) : null;
      preview.show(shown, { modelName, scaling, sizeWarning, labels });
      services.log.info(`Create Pair: preview of ${sample.first}: model input ${shown.width}×${shown.height}, values ${shown.tensorRange.join('..')}, predicted ${shown.label} (${(100 * shown.msp).toFixed(1)}%)`);
      const next = await choose<'fit' | 'size' | 'scaling'>(step(5, 'preview'), `${basename(sample.first)} as ${modelName} sees it: predicted ${shown.label} (${(100 * shown.msp).toFixed(1)}%). Does the picture look right?`, [
        { label: '$(arrow-right) Looks right: continue', description: 'choose the VAE and the pair folder next', value: 'fit' },
        ...(sizeOpen ? [{ label: '$(screen-full) Change the size…', description: `now ${shown.width}×${shown.height} (width × height)`, value: 'size' as const }] : []),
        ...(uint8 ? [] : [{ label: '$(symbol-numeric) Change the scaling…', description: `now ${scalingWords(scaling)}`, value: 'scaling' as const }]),
      ]);
      if (next === 'fit') break;
      if (next === 'size') {
        await memory.set({ size: undefined });
        dimensions = { ...dimensions, ...(await askOpenDimensions({ ...facts, imageNeeds: ['size'] }, sample, memory, 'size')) };
        facts = withClassOutput(await read(dimensions), facts.classOutput!.name);
      } else scaling = await askScaling(facts.image!.channels, modelName, memory);
    }
  } finally {
    preview.dispose();
  }

  const { vae, likelihood } = await askVae(facts, memory);
  const { out, force } = await askFolder(classifier, memory);
  const use = await askUse(basename(out), memory);
  const answers: CreatePairAnswers = { classifier, facts, scaling, labels, data, vae, likelihood, out, force, ...dimensions, ...(padding ? { padding } : {}), ...(constants ? { constants } : {}) };
  // What fit makes (the folder and any missing parents) is removed again if it fails: nothing is left behind.
  const made = firstMissingFolder(out, existsSync);
  let report: FitReport | undefined;
  try {
    report = await runFit(services, answers);
  } finally {
    if (!report) removeLeftovers(made, out, services.log);
  }
  if (!report) return;
  services.log.info(`Create Pair: wrote ${report.manifestPath} in ${report.seconds.toFixed(1)} s; ${falseAlarmSentence(report)}`);
  let selected = false;
  if (use) {
    try {
      await activatePair(services, host, report.manifestPath, `pair ${report.name} created`);
      selected = true;
    } catch (err) {
      services.log.error(`Create Pair: the new pair was written but could not be loaded: ${(err as Error).message}`);
    }
  }
  await FitResultPanel.show(services, report, { selected, kept: !use });
  if (report.failed) {
    void vscode.window.showWarningMessage(`OOD Lens: ${report.failed} of the images could not be scored and were left out (first: ${report.failures[0]?.path}: ${report.failures[0]?.error}).`, 'Show log').then((c) => c && services.log.show(true));
  }
}
