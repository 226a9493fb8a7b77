// Binding a listener: resolves with the port once listening, rejects with the bind error (EADDRINUSE,
// EACCES) instead of leaving it to an 'error' event nobody awaits. Shared by the admin and POP3 listeners.
import type { AddressInfo, Server } from 'node:net';
import type { HostPort } from '../config.ts';

export function listenOn(server: Server, where: HostPort): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(where.port, where.host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
