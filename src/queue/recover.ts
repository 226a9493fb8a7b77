// Start-up: create the spool layout and sort what a crash left behind into queued, garbage and corrupt.
// Never deletes a todo file (suspicious ones go to corrupt/) and never writes message state.
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.ts';
import { isMessageId } from './id.ts';
import { decodeTodo, topBytes, type TodoState } from './state.ts';

export interface Layout {
  readonly tmp: string;
  readonly mess: string;
  readonly todo: string;
  readonly corrupt: string;
}

export function layout(dir: string): Layout {
  return { tmp: join(dir, 'tmp'), mess: join(dir, 'mess'), todo: join(dir, 'todo'), corrupt: join(dir, 'corrupt') };
}

const BATCH = 64;

/** Creates the directories, cleans up, and returns every queued message, oldest first. */
export async function recover(dirs: Layout, log: Logger): Promise<TodoState[]> {
  for (const d of [dirs.tmp, dirs.mess, dirs.todo, dirs.corrupt]) await mkdir(d, { recursive: true, mode: 0o700 });

  // tmp/: files being written when the process stopped; none of them was ever acknowledged.
  const garbage = await readdir(dirs.tmp);
  for (const name of garbage) await rm(join(dirs.tmp, name), { recursive: true, force: true });
  if (garbage.length > 0) log.info({ files: garbage.length }, 'queue: removed unfinished files from tmp/');

  const setAside = async (file: string, reason: string, err?: unknown): Promise<void> => {
    const target = join(dirs.corrupt, `${file.replace(/^.*\//, '')}.${Date.now()}`);
    await rename(file, target);
    log.error({ file, movedTo: target, reason, err }, 'queue: corrupt queue file moved aside');
  };

  const queued: TodoState[] = [];
  const names = await readdir(dirs.todo);
  for (let i = 0; i < names.length; i += BATCH) {
    await Promise.all(names.slice(i, i + BATCH).map(async (name) => {
      const file = join(dirs.todo, name);
      const id = name.slice(0, -'.json'.length);
      if (!name.endsWith('.json') || !isMessageId(id)) return setAside(file, 'not a queue file name');
      let todo: TodoState;
      try {
        todo = decodeTodo(await readFile(file, 'utf8'), id);
      } catch (err) {
        return setAside(file, 'unreadable todo file', err);
      }
      const size = await stat(join(dirs.mess, id)).then((s) => s.size, () => null);
      if (size === null) return setAside(file, 'todo file without message file (impossible by construction)');
      if (size + topBytes(todo) !== todo.size) {
        await setAside(file, `message file has ${size} bytes (+${topBytes(todo)} on top), todo says ${todo.size}`);
        return setAside(join(dirs.mess, id), 'message file of a corrupt todo file');
      }
      queued.push(todo);
    }));
  }

  // mess/ without todo/: the writer stopped before the commit point; nobody was told 250.
  const kept = new Set(queued.map((t) => t.id));
  let orphans = 0;
  for (const name of await readdir(dirs.mess)) {
    if (kept.has(name)) continue;
    await rm(join(dirs.mess, name), { force: true, recursive: true });
    orphans++;
  }
  if (orphans > 0) log.info({ files: orphans }, 'queue: removed message files that were never committed');

  queued.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  log.info({ messages: queued.length }, 'queue: recovered');
  return queued;
}
