import { call } from './client.js';

/** One page of a list answer, as every paged route shapes its `data`. */
export interface Page<T> {
  readonly items: T[];
  readonly pagination: { readonly total_pages: number };
}

/** The most items a page may hold (the API's page_size limit): fewest requests for a whole list. */
export const PAGE_SIZE = 100;

/**
 * Every item of a paged list: asks for page 1, 2, … (`PAGE_SIZE` each) until the last page. An
 * error answer on any page throws (call()'s CliError), so a list is never silently cut short.
 */
export async function allPages<T>(request: (page: number) => Promise<{ data?: { data: Page<T> }; error?: unknown; response: Response }>): Promise<T[]> {
  const all: T[] = [];
  for (let page = 1; ; page++) {
    const data = (await call(request(page))).data;
    all.push(...data.items);
    if (page >= data.pagination.total_pages || data.items.length === 0) return all;
  }
}
