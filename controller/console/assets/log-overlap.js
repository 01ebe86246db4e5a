// Live logs after an EventSource reconnect: the follow starts again by re-sending the log's last lines,
// some of which are already shown. LogOverlap skips exactly those, by position: the replay's first
// lines are matched once against the end of what is shown (the longest overlap wins), so a line that
// really repeats (the same text printed again) is still shown.

export class LogOverlap {
  /** `keep`: how many of the last shown lines are remembered (the follow's `lines=`). */
  constructor(keep = 200) {
    this.keep = keep;
    this.recent = [];
    this.replay = undefined;
  }

  /** The connection dropped: the next lines begin with a replay of the log's tail. */
  reconnected() {
    this.replay = { starts: this.recent.map((_, i) => i), held: [], best: 0 };
  }

  /** A line arrived; returns the lines to show now (none while it may still be part of the replay). */
  accept(line) {
    const replay = this.replay;
    if (!replay) return this.show([line]);
    replay.held.push(line);
    const j = replay.held.length - 1;
    replay.starts = replay.starts.filter((i) => this.recent[i + j] === line);
    // A start whose match reached the end of what is shown: an overlap of j + 1 lines.
    for (const i of replay.starts) if (i + j === this.recent.length - 1) replay.best = j + 1;
    replay.starts = replay.starts.filter((i) => i + j < this.recent.length - 1);
    if (replay.starts.length > 0) return [];
    // No longer overlap possible: what was held beyond the longest overlap is new.
    this.replay = undefined;
    return this.show(replay.held.slice(replay.best));
  }

  show(lines) {
    this.recent.push(...lines);
    if (this.recent.length > this.keep) this.recent.splice(0, this.recent.length - this.keep);
    return lines;
  }
}
