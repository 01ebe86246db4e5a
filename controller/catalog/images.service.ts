import { AppError } from '../../common/errors.js';
import type { Db } from '../db/database.js';
import type { ImageRow } from '../db/schema.js';
import { isForeignKeyViolation, isUniqueViolation } from '../db/errors.js';
import { pageOffset, type Page, type PageRequest } from '../db/pagination.js';

export interface NewImage {
  readonly name: string;
  readonly dockerRef: string;
  readonly description: string;
  readonly sshPort: number;
  readonly jupyterPort: number | null;
  readonly dataPath: string;
}

export type ImageChanges = Partial<NewImage>;

/** The image catalog environments are created from. */
export class ImagesService {
  constructor(private readonly db: Db) {}

  /** Adds an image to the catalog. A taken name is a conflict. */
  async create(input: NewImage): Promise<ImageRow> {
    try {
      return await this.db
        .insertInto('images')
        .values({
          name: input.name,
          docker_ref: input.dockerRef,
          description: input.description,
          ssh_port: input.sshPort,
          jupyter_port: input.jupyterPort,
          data_path: input.dataPath,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
    } catch (err) {
      throw duplicateName(err, input.name);
    }
  }

  /** The catalog in name order. */
  async list(page: PageRequest): Promise<Page<ImageRow>> {
    const [items, count] = await Promise.all([
      this.db.selectFrom('images').selectAll().orderBy('name').orderBy('id').limit(page.pageSize).offset(pageOffset(page)).execute(),
      this.db.selectFrom('images').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow(),
    ]);
    return { items, total: Number(count.n) };
  }

  /** One image. Throws not_found. */
  async get(imageId: number): Promise<ImageRow> {
    const image = await this.db.selectFrom('images').selectAll().where('id', '=', imageId).executeTakeFirst();
    if (!image) throw new AppError('not_found', `image ${imageId} not found`);
    return image;
  }

  /**
   * Changes the given fields of an image; environments created before keep what they were created
   * with. Throws not_found, or conflict when the new name is taken.
   */
  async update(imageId: number, changes: ImageChanges): Promise<ImageRow> {
    const set = {
      ...(changes.name !== undefined && { name: changes.name }),
      ...(changes.dockerRef !== undefined && { docker_ref: changes.dockerRef }),
      ...(changes.description !== undefined && { description: changes.description }),
      ...(changes.sshPort !== undefined && { ssh_port: changes.sshPort }),
      ...(changes.jupyterPort !== undefined && { jupyter_port: changes.jupyterPort }),
      ...(changes.dataPath !== undefined && { data_path: changes.dataPath }),
    };
    if (Object.keys(set).length === 0) return this.get(imageId);
    try {
      const row = await this.db.updateTable('images').set(set).where('id', '=', imageId).returningAll().executeTakeFirst();
      if (!row) throw new AppError('not_found', `image ${imageId} not found`);
      return row;
    } catch (err) {
      throw duplicateName(err, changes.name ?? '');
    }
  }

  /**
   * Removes an image from the catalog. Refused (wrong_state) while an environment that is not
   * deleted uses it, or while deleted environments that still reference it have not been purged.
   * Throws not_found.
   */
  async delete(imageId: number): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const image = await trx.selectFrom('images').select(['id', 'name']).where('id', '=', imageId).forUpdate().executeTakeFirst();
      if (!image) throw new AppError('not_found', `image ${imageId} not found`);
      const users = await trx
        .selectFrom('environments')
        .select(['id', 'status'])
        .where('image_id', '=', imageId)
        .where('desired_state', '<>', 'deleted')
        .orderBy('created_at')
        .execute();
      if (users.length > 0) {
        throw new AppError(
          'wrong_state',
          `image "${image.name}" is used by ${users.length} environment(s) (${users.slice(0, 5).map((e) => `${e.id} ${e.status}`).join(', ')}); delete them first`,
        );
      }
      try {
        await trx.deleteFrom('images').where('id', '=', imageId).execute();
      } catch (err) {
        if (isForeignKeyViolation(err)) {
          throw new AppError('wrong_state', `image "${image.name}" is still referenced by deleted environments that have not been purged yet; retry later`, {
            cause: err,
          });
        }
        throw err;
      }
    });
  }
}

function duplicateName(err: unknown, name: string): unknown {
  if (isUniqueViolation(err)) return new AppError('conflict', `an image named "${name}" already exists; choose another name or update that image`, { cause: err });
  return err;
}
