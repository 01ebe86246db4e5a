/** Which page of a list to return: `page` counts from 1; `pageSize` rows per page. */
export interface PageRequest {
  readonly page: number;
  readonly pageSize: number;
}

/** One page of rows and the exact number of rows over all pages. */
export interface Page<T> {
  readonly items: T[];
  readonly total: number;
}

/** Rows to skip before `request`'s page. */
export function pageOffset(request: PageRequest): number {
  return (request.page - 1) * request.pageSize;
}

/** Number of pages for `total` rows: ceil(total / pageSize), 0 when there are no rows. */
export function totalPages(total: number, pageSize: number): number {
  return total === 0 ? 0 : Math.ceil(total / pageSize);
}
