// What every suite returns, and how it is printed. A row is one weft figure
// beside its anchor, measured in the same run; `ratio` is how many times
// better weft did (for latencies: anchor time over weft time).

export interface Row {
  suite: string;
  name: string;
  /** This run's weft figure, in `unit`. */
  weft: number;
  /** This run's anchor figure, in `unit`. */
  anchor: number;
  anchorName: string;
  unit: string;
  /** Times better than the anchor (>1 is better), whatever the unit. */
  ratio: number;
  /** The ratio we aim for, when there is one. */
  target: number | undefined;
  /** False for latencies, where weft's smaller figure is the better one. */
  higherIsBetter: boolean;
}

/**
 * A row from its two figures: the ratio is weft over anchor for rates,
 * anchor over weft for times (`higherIsBetter: false`), so > 1 is always
 * weft ahead.
 */
export function rowOf(r: Omit<Row, 'ratio' | 'target' | 'higherIsBetter'> & { target?: number | undefined; higherIsBetter?: boolean }): Row {
  const higherIsBetter = r.higherIsBetter ?? true;
  return { ...r, target: r.target, higherIsBetter, ratio: higherIsBetter ? r.weft / r.anchor : r.anchor / r.weft };
}

export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toFixed(2)} G`;
  if (a >= 1e6) return `${(v / 1e6).toFixed(2)} M`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(1)} k`;
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

export function printRows(rows: readonly Row[]): void {
  const table = rows.map((r) => ({
    suite: r.suite,
    figure: r.name,
    weft: `${formatNumber(r.weft)} ${r.unit}`,
    anchor: `${formatNumber(r.anchor)} (${r.anchorName})`,
    ratio: `${r.ratio.toFixed(r.ratio < 10 ? 2 : 1)}x`,
    target: r.target === undefined ? '' : `>= ${r.target}x ${r.ratio >= r.target ? 'met' : 'MISSED'}`,
  }));
  console.table(table);
}
