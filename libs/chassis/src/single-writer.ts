/**
 * Serializes the writes to one key (a document, or a collection) within this
 * process.
 *
 * Why: FerretDB 1.x, which local runs and tests use, does not make
 * single-document updates atomic. Its SQLite backend reads, changes and
 * rewrites a document in separate steps, so concurrent findOneAndUpdate calls
 * with the same filter can all "win" and concurrent $set or $inc lose writes
 * (measured here: 57 wins for 10 rounds of 10 racing compare-and-sets, where 10
 * is right; 5 of 50 racing $inc kept; upstream FerretDB/FerretDB#3040). Unique
 * indexes do hold. MongoDB, in production, makes single-document updates atomic
 * across processes.
 *
 * So every compare-and-set in the stores (codes, refresh tokens, flow
 * transitions, connections) runs inside a SingleWriter: the rules hold on
 * MongoDB with any number of instances, and on FerretDB with one writing
 * process per database, which is how the project's own scripts run it.
 */
export class SingleWriter {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(fn, fn);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Keys with writes queued or running (for tests and bounds). */
  get pending(): number {
    return this.tails.size;
  }
}
