// Disk usage as hosts report it, and when a report is worth a write (pure; the write itself is
// `recordUsage` in environment-writes.ts).

/** What a host report says one environment uses of the disk, in bytes; null: the agent could not tell. */
export interface UsageReport {
  readonly envId: string;
  readonly storageUsedBytes: number | null;
  readonly rootfsUsedBytes: number | null;
}

/** How often unchanged usage figures are written again (so usage_measured_at stays fresh without a write per report). */
export const USAGE_REFRESH_S = 60;

/**
 * Whether `report` is worth a write over what `row` holds: a figure changed, or the stored ones are
 * a minute old (recordUsage's own condition, checked first here so that a report that changes
 * nothing writes nothing).
 */
export function usageChanged(
  row: { storage_used_bytes: number | null; rootfs_used_bytes: number | null; usage_measured_at: Date | null },
  report: UsageReport,
  now = Date.now(),
): boolean {
  if (report.storageUsedBytes === null && report.rootfsUsedBytes === null) return false;
  if (!row.usage_measured_at || now - row.usage_measured_at.getTime() >= USAGE_REFRESH_S * 1000) return true;
  const changed = (reported: number | null, stored: number | null) => reported !== null && reported !== (stored === null ? null : Number(stored));
  return changed(report.storageUsedBytes, row.storage_used_bytes) || changed(report.rootfsUsedBytes, row.rootfs_used_bytes);
}
