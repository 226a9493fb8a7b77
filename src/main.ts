// Composition root: build every part from one validated Config, start them, stop them in reverse.
// The only place that constructs stages; stages get what they need passed in.
import type { Config } from './config.ts';
import { createDirectory, type DirectoryHandle } from './directory/index.ts';
import type { Logger } from './log.ts';

export interface Running {
  readonly directory: DirectoryHandle;
  stop(): Promise<void>;
}

export async function start(config: Config, deps: { log: Logger; baseDir?: string }): Promise<Running> {
  const directory = await createDirectory(config, deps);
  deps.log.info({ hostname: config.hostname, localDomains: config.localDomains, embedded: directory.embeddedUrl !== null }, 'ldapmta started');
  let stopping: Promise<void> | null = null;
  return {
    directory,
    stop() {
      stopping ??= (async () => {
        await directory.close();
        deps.log.info('ldapmta stopped');
      })();
      return stopping;
    },
  };
}
