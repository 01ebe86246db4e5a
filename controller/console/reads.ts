import { AppError } from '../../common/errors.js';

/** What `read` resolves to, or undefined when it throws not_found (a page then answers 404). */
export async function unlessNotFound<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (err) {
    if (err instanceof AppError && err.code === 'not_found') return undefined;
    throw err;
  }
}
