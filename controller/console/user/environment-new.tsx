import type { ImageRow } from '../../db/schema.js';
import type { FreeCapacity } from '../../environments/free-capacity.js';
import { formatBytes, translator, type Lang, type Texts } from '../i18n.js';
import { Page, type PageContext } from '../layout.js';

type Key =
  | 'title' | 'name' | 'description' | 'image' | 'cpu' | 'memory' | 'storage' | 'gpu' | 'gpuModel' | 'anyModel' | 'create' | 'cancel'
  | 'free' | 'freeNone' | 'freeModel' | 'largest' | 'gib' | 'noImages' | 'cpuHint' | 'memoryHint' | 'storageHint' | 'gpuHint' | 'capacity';

const TEXT: Texts<Key> = {
  en: {
    title: 'New environment', name: 'Name', description: 'Description (optional)', image: 'Image', cpu: 'CPU cores', memory: 'Memory (GiB)',
    storage: 'Storage (GiB)', gpu: 'GPUs', gpuModel: 'GPU model', anyModel: 'Any model', create: 'Create', cancel: 'Cancel',
    free: 'Free now', freeNone: 'No host takes new environments right now.', freeModel: '{free} × {model} free (at most {max} on one host)',
    largest: 'Largest free on one host: {gpu} GPUs, {cpu} CPU cores, {memory} memory, {storage} storage.', gib: 'GiB',
    noImages: 'The image catalog is empty: ask an admin to add an image.', cpuHint: 'Whole cores, 1 to 1024.',
    memoryHint: 'In GiB (0.5 = 512 MiB).', storageHint: 'In GiB, at least 1; the volume keeps your data across stop and start.',
    gpuHint: '0 for none; the GPUs of one environment are on one host.', capacity: 'Free capacity',
  },
  zh: {
    title: '新建环境', name: '名称', description: '描述（可选）', image: '镜像', cpu: 'CPU 核数', memory: '内存（GiB）',
    storage: '存储（GiB）', gpu: 'GPU 数量', gpuModel: 'GPU 型号', anyModel: '任意型号', create: '创建', cancel: '取消',
    free: '当前空闲', freeNone: '目前没有可接收新环境的主机。', freeModel: '{model} 空闲 {free} 块（单台主机最多 {max} 块）',
    largest: '单台主机最大空闲：{gpu} 块 GPU、{cpu} 个 CPU 核、{memory} 内存、{storage} 存储。', gib: 'GiB',
    noImages: '镜像目录为空：请联系管理员添加镜像。', cpuHint: '整数核数，1 到 1024。',
    memoryHint: '单位 GiB（0.5 = 512 MiB）。', storageHint: '单位 GiB，至少 1；停止和启动后数据保留在卷中。',
    gpuHint: '0 表示不用 GPU；同一环境的 GPU 在同一台主机上。', capacity: '空闲资源',
  },
};

/**
 * GET /environments/new: the create form. Image from the catalog, CPU, memory and storage in GiB
 * (environment-new.js converts to bytes), GPU count and model, free capacity as a hint. Submitted
 * to POST /api/v1/environments by the script; its error (e.g. 40902) shows in the form's alert.
 */
export function NewEnvironment(props: { ctx: PageContext; images: readonly ImageRow[]; capacity: FreeCapacity }) {
  const { ctx, images, capacity } = props;
  const t = translator(TEXT, ctx.lang);
  return (
    <Page ctx={ctx} title={t('title')}>
      <CapacityHint capacity={capacity} lang={ctx.lang} />
      <form id="create-environment" class="card">
        <label for="env-name">{t('name')}</label>
        <input id="env-name" name="name" required maxlength={64} autocomplete="off" />
        <label for="env-description">{t('description')}</label>
        <input id="env-description" name="description" maxlength={1024} autocomplete="off" />
        <label for="env-image">{t('image')}</label>
        <select id="env-image" name="image" required>
          {images.map((img) => <option value={img.name}>{img.description ? `${img.name} — ${img.description}` : img.name}</option>)}
        </select>
        {images.length === 0 ? <p class="hint">{t('noImages')}</p> : null}
        <div class="grid">
          <div>
            <label for="env-cpu">{t('cpu')}</label>
            <input id="env-cpu" name="cpu" type="number" min={1} max={1024} step={1} value="2" required aria-describedby="env-cpu-hint" />
            <p id="env-cpu-hint" class="hint">{t('cpuHint')}</p>
          </div>
          <div>
            <label for="env-memory">{t('memory')}</label>
            <input id="env-memory" name="memory" type="number" min={0.0625} step="any" value="8" required data-unit="GiB" aria-describedby="env-memory-hint" />
            <p id="env-memory-hint" class="hint">{t('memoryHint')}</p>
          </div>
          <div>
            <label for="env-storage">{t('storage')}</label>
            <input id="env-storage" name="storage" type="number" min={1} step={1} value="50" required data-unit="GiB" aria-describedby="env-storage-hint" />
            <p id="env-storage-hint" class="hint">{t('storageHint')}</p>
          </div>
          <div>
            <label for="env-gpu">{t('gpu')}</label>
            <input id="env-gpu" name="gpu" type="number" min={0} max={64} step={1} value="1" required aria-describedby="env-gpu-hint capacity" />
            <p id="env-gpu-hint" class="hint">{t('gpuHint')}</p>
          </div>
          <div>
            <label for="env-gpu-model">{t('gpuModel')}</label>
            <select id="env-gpu-model" name="gpu_model">
              <option value="">{t('anyModel')}</option>
              {capacity.gpuModels.map((m) => <option value={m.model}>{`${m.model} (${m.free})`}</option>)}
            </select>
          </div>
        </div>
        <p role="alert" id="create-error" tabindex={-1} hidden></p>
        <p class="actions">
          <button type="submit">{t('create')}</button> <a href="/environments">{t('cancel')}</a>
        </p>
      </form>
      <script type="module" src="/assets/console/environment-new.js"></script>
    </Page>
  );
}

function CapacityHint(props: { capacity: FreeCapacity; lang: Lang }) {
  const t = translator(TEXT, props.lang);
  const { capacity } = props;
  const l = capacity.largest;
  return (
    <section id="capacity" class="card hint" aria-label={t('capacity')}>
      <strong>{t('free')}: </strong>
      {capacity.schedulableHosts === 0 ? (
        t('freeNone')
      ) : (
        <>
          <ul>{capacity.gpuModels.map((m) => <li>{t('freeModel', { free: m.free, model: m.model, max: m.maxPerHost })}</li>)}</ul>
          <span>{t('largest', { gpu: l.gpu, cpu: trim(l.cpuCores), memory: formatBytes(Math.max(0, l.memoryBytes)), storage: formatBytes(Math.max(0, l.storageBytes)) })}</span>
        </>
      )}
    </section>
  );
}

const trim = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1));
