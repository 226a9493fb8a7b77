// DIAGNOSIS ONLY, never for production: a preload that removes smtp-server's fixed 100 ms wait before the
// 220 greeting (SMTPConnection.init(): `setTimeout(() => this.connectionReady(), 100)`, its early-talker
// check), to measure what ldapmta does without it:
//   NODE_FLAGS="--import ./bench/no-greeting-delay.mjs" npm run bench:smtp
// Same body as smtp-server 3.21.6's init() minus the timer. Throws if the internals it replaces are gone.
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

const original = SMTPConnection.prototype.init;
if (typeof original !== 'function' || !/connectionReady\(\), 100\)/.test(String(original)) || typeof SMTPConnection.prototype._setListeners !== 'function') {
  throw new Error('no-greeting-delay.mjs: smtp-server internals changed; this preload no longer applies');
}
SMTPConnection.prototype.init = function init() {
  this._setListeners(() => {
    if (this._server.options.maxClients && this._server.connections.size > this._server.options.maxClients) {
      return this.send(421, this.name + ' Too many connected clients, try again in a moment', false);
    }
    this.connectionReady();
  });
};
