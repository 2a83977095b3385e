// Who killed a thread. A thread that exits (process.exit) first sends the
// results it made and names the tasks it was running; only those count a
// death, so an innocent task queued behind the killer is never given up
// with it. A thread that dies without that note (a crash) gets every
// unanswered task blamed. A task in flight on MAX_DEATHS threads that died
// is given up on: it is likely the one killing them.

import { WorkerLostError } from '../../core/errors.ts';
import { failed, type Task, type TaskResult } from '../../core/task.ts';
import type { TaskId } from '../../channel-protocol/messages.ts';

const MAX_DEATHS = 3;

const sameTask = (task: Task, [key, index, stage, attempt]: TaskId) =>
  task.key === key && task.index === index && task.stage === stage && task.attempt === attempt;

export class Blame {
  private readonly deaths = new WeakMap<Task, number>();

  /** Of a dead thread's unanswered tasks, those it was running (`running`: its note; undefined: it left none). */
  static blamed(lost: readonly Task[], running: readonly TaskId[] | undefined): ReadonlySet<Task> {
    return new Set(running === undefined ? lost : lost.filter((task) => running.some((id) => sameTask(task, id))));
  }

  /**
   * Sorts a dead thread's tasks into those to run again and those given up:
   * each blamed one counts a death, and one at MAX_DEATHS gets a
   * WorkerLostError result. `error` is how the thread died, if known.
   */
  sort(lost: readonly Task[], blamed: ReadonlySet<Task>, error: Error | undefined): { again: Task[]; given: TaskResult[] } {
    const again: Task[] = [];
    const given: TaskResult[] = [];
    for (const task of lost) {
      if (!blamed.has(task)) {
        again.push(task);
        continue;
      }
      const deaths = (this.deaths.get(task) ?? 0) + 1;
      this.deaths.set(task, deaths);
      if (deaths < MAX_DEATHS) again.push(task);
      else {
        const others = blamed.size > 1 ? ` (the last time, ${blamed.size - 1} other tasks were running alongside it)` : '';
        const how = error === undefined ? '' : ` (${error.message})`;
        given.push(failed(task, new WorkerLostError(`a worker thread died while running this task, ${deaths} times${how}${others}`)));
      }
    }
    return { again, given };
  }
}
