// Lists: the sample qmailGroup staff@example.org (members-only; members by DN, by address and by
// filter; a bounce admin) and groupOfNames/groupOfUniqueNames groups added here, nested and in a
// cycle. Real slapd, real SMTP in; members in other domains leave through a loopback DNS to a sink.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startDns, type TestDns } from '../harness/dns.ts';
import { startServer, type TestServer } from '../harness/ldapmta.ts';
import { startSlapd, type Slapd } from '../harness/slapd.ts';
import { startSink, type SmtpSink } from '../harness/smtp-sink.ts';
import {
  addressOf, assertReply, marker, messagesWith, simpleMessage, todoFiles, waitFor, waitForMessages, sendOnce,
} from '../fixtures/smtp-helpers.ts';

const PEOPLE = 'ou=people,dc=example,dc=org';
const GROUPS = `
dn: cn=ring-a,${PEOPLE}
objectClass: groupOfNames
objectClass: extensibleObject
cn: ring-a
mail: ring-a@example.org
member: cn=ring-b,${PEOPLE}
member: uid=bob,${PEOPLE}

dn: cn=ring-b,${PEOPLE}
objectClass: groupOfNames
objectClass: extensibleObject
cn: ring-b
mail: ring-b@example.org
member: cn=ring-a,${PEOPLE}
member: uid=alice,${PEOPLE}
member: uid=bob,${PEOPLE}

dn: cn=deep-1,${PEOPLE}
objectClass: groupOfNames
objectClass: extensibleObject
cn: deep-1
mail: deep@example.org
member: cn=deep-2,${PEOPLE}
member: uid=bob,${PEOPLE}

dn: cn=deep-2,${PEOPLE}
objectClass: groupOfNames
objectClass: extensibleObject
cn: deep-2
member: cn=deep-3,${PEOPLE}

dn: cn=deep-3,${PEOPLE}
objectClass: groupOfNames
objectClass: extensibleObject
cn: deep-3
member: uid=alice,${PEOPLE}

dn: cn=big,${PEOPLE}
objectClass: groupOfNames
objectClass: extensibleObject
cn: big
mail: big@example.org
member: uid=alice,${PEOPLE}
member: uid=bob,${PEOPLE}
member: uid=dave,${PEOPLE}
member: uid=frank,${PEOPLE}

dn: cn=uniq,${PEOPLE}
objectClass: groupOfUniqueNames
objectClass: extensibleObject
cn: uniq
mail: uniq@example.org
uniqueMember: uid=dave,${PEOPLE}#'0101'B
uniqueMember: uid=nobody-here,${PEOPLE}
`;

const send = sendOnce;

describe('groups and lists', () => {
  let slapd: Slapd;
  let dns: TestDns;
  let sink: SmtpSink;
  let server: TestServer;
  let shallow: TestServer;

  before(async () => {
    slapd = await startSlapd();
    await slapd.ldapadd(GROUPS);
    dns = await startDns({ mx: { 'partner.test': [{ preference: 10, exchange: 'mx.partner.test' }] }, a: { 'mx.partner.test': ['127.0.0.1'] } });
    sink = await startSink();
    // judy (staff's filter member) lives on mx2; here mx2 is the sink, so her copy is visible too.
    const delivery = { dnsServers: [dns.server], remotePort: sink.port, hostMap: { 'mx2.example.org': `127.0.0.1:${sink.port}` } };
    server = await startServer(slapd, { delivery });
    shallow = await startServer(slapd, { delivery, directory: { ...server.config.directory, groupMaxDepth: 1, groupExpansionLimit: 3 } });
  });
  after(async () => {
    await server?.stop();
    await shallow?.stop();
    await sink?.close();
    await dns?.close();
    await slapd?.stop();
  });

  test('a member posts to staff: one copy each for the DN members, the address member and the filter member', async () => {
    const subject = marker('staff');
    const result = await send(server.smtpPort, 'alice@example.org', ['staff@example.org'], simpleMessage(subject));
    assertReply(result.rcpts[0]!, 250, '2.1.5', 'RCPT staff');
    assertReply(result.end!, 250, '2.6.0', 'end of data');
    for (const user of ['alice', 'bob']) {
      const [copy] = await waitForMessages(server.maildir(user), subject);
      assert.match(copy!.header, /^Delivered-To: staff@example\.org$/m, user);
      assert.match(copy!.header, /^Precedence: bulk$/m, user);
    }
    const remote = await waitFor('the copies for outside@partner.test and judy (mx2)', async () => {
      const found = sink.messages.filter((m) => m.body.includes(subject));
      return found.flatMap((m) => m.recipients).length >= 2 ? found : null;
    }, 10_000);
    assert.deepEqual(remote.flatMap((m) => m.recipients).sort(), ['judy@example.org', 'outside@partner.test']);
    assert.ok(remote.every((m) => m.sender === 'postmaster@example.org'), 'failures of the copies go to the bounce admin');
  });

  test('members-only: a stranger is refused at RCPT with 550 5.7.2; the filter member and the address member may post', async () => {
    const stranger = await send(server.smtpPort, 'someone@sender.test', ['staff@example.org'], simpleMessage('never'));
    assertReply(stranger.rcpts[0]!, 550, '5.7.2', 'stranger');
    const nullSender = await send(server.smtpPort, '', ['staff@example.org'], simpleMessage('never'));
    assertReply(nullSender.rcpts[0]!, 550, '5.7.2', 'null sender');
    for (const member of ['judy@example.org', 'outside@partner.test']) {
      const result = await send(server.smtpPort, member, ['staff@example.org'], simpleMessage(marker('allowed')));
      assertReply(result.rcpts[0]!, 250, '2.1.5', member);
    }
  });

  test('groupOfNames in a cycle: each member once, no loop; a member listed by both groups gets one copy', async () => {
    const subject = marker('ring');
    const result = await send(server.smtpPort, 'someone@sender.test', ['ring-a@example.org'], simpleMessage(subject));
    assertReply(result.end!, 250, '2.6.0', 'end of data');
    await waitForMessages(server.maildir('alice'), subject);
    await waitForMessages(server.maildir('bob'), subject);
    await waitFor('the queue to drain', async () => (await todoFiles(server.config.spool)).length === 0, 10_000);
    assert.equal((await messagesWith(server.maildir('bob'), subject)).length, 1, 'bob is in both groups');
    assert.equal((await messagesWith(server.maildir('alice'), subject)).length, 1);
  });

  test('groupOfUniqueNames: the uid suffix is ignored and a member DN that does not exist is skipped', async () => {
    const subject = marker('uniq');
    await send(server.smtpPort, 'someone@sender.test', ['uniq@example.org'], simpleMessage(subject));
    await waitForMessages(server.maildir('dave'), subject);
  });

  test('nesting: two levels deep are expanded by default; with groupMaxDepth 1 the second level is not', async () => {
    const subject = marker('deep');
    await send(server.smtpPort, 'someone@sender.test', ['deep@example.org'], simpleMessage(subject));
    await waitForMessages(server.maildir('alice'), subject);
    const shallowSubject = marker('shallow');
    await send(shallow.smtpPort, 'someone@sender.test', ['deep@example.org'], simpleMessage(shallowSubject));
    await waitForMessages(shallow.maildir('bob'), shallowSubject);
    await waitFor('the queue to drain', async () => (await todoFiles(shallow.config.spool)).length === 0, 10_000);
    assert.deepEqual(await messagesWith(shallow.maildir('alice'), shallowSubject), [], 'alice is two levels down');
  });

  test('groupExpansionLimit: a list larger than the limit stays queued with 4.2.4, nothing is sent; a members-only check that hits it is 451 4.2.4 at RCPT', async () => {
    const subject = marker('toolarge');
    const result = await send(shallow.smtpPort, 'someone@sender.test', ['big@example.org'], simpleMessage(subject));
    assertReply(result.end!, 250, '2.6.0', 'end of data');
    const todo = await waitFor('the deferral', async () => (await todoFiles(shallow.config.spool))
      .find((t) => t.recipients.some((r) => addressOf(r.address) === 'big@example.org' && r.attempts > 0)) ?? null, 10_000);
    assert.equal(todo.recipients[0]!.lastError?.status, '4.2.4');
    assert.equal(todo.recipients[0]!.state, 'pending');
    assert.deepEqual(await messagesWith(shallow.maildir('bob'), subject), []);
    const staff = await send(shallow.smtpPort, 'alice@example.org', ['staff@example.org'], simpleMessage('never'));
    assertReply(staff.rcpts[0]!, 451, '4.2.4', 'members-only check over the limit');
  });
});
