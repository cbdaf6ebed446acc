// Runs the official Daytona TypeScript SDK (@daytonaio/sdk, pinned in package.json) against
// runbox's FakeDaytona and exits non-zero on the first mismatch.
//
//   RUNBOX_FAKE_URL=http://127.0.0.1:PORT [RUNBOX_FAKE_API_KEY=dtn_test] node conformance.mjs
//
// Flow: create (labels, env) -> list by label -> get -> process/execute -> session create + exec
// -> async server start in a session + preview link + /alive through the preview proxy -> files
// upload/download -> stop -> start -> delete -> get of an unknown id (not-found error) -> a wrong
// key (authentication error).
import assert from 'node:assert/strict';
import { Daytona, DaytonaNotFoundError, DaytonaAuthenticationError } from '@daytonaio/sdk';

const base = process.env.RUNBOX_FAKE_URL;
if (!base) {
  console.error('RUNBOX_FAKE_URL is not set (e.g. http://127.0.0.1:PORT from `runbox-fake daytona`)');
  process.exit(2);
}
const apiKey = process.env.RUNBOX_FAKE_API_KEY ?? 'dtn_test';
const apiUrl = base.replace(/\/+$/, '') + '/api';

let step = 'setup';
const check = async (name, fn) => {
  step = name;
  await fn();
  console.log(`ok - ${name}`);
};

async function main() {
  const daytona = new Daytona({ apiKey, apiUrl, target: 'us', useDeprecatedPolling: true });
  const team = `conformance-${process.pid}-${Date.now()}`;
  let sandbox;

  await check('create with labels and env', async () => {
    sandbox = await daytona.create({ envVars: { FOO: 'bar' }, labels: { team }, autoStopInterval: 15, public: false });
    assert.equal(typeof sandbox.id, 'string');
    assert.equal(sandbox.state, 'started');
    assert.equal(sandbox.labels.team, team);
    assert.equal(sandbox.labels['code-toolbox-language'], 'python');
    assert.equal(sandbox.env.FOO, 'bar');
    assert.equal(sandbox.target, 'us');
    assert.equal(sandbox.autoStopInterval, 15);
  });

  await check('list by label', async () => {
    const found = [];
    for await (const s of daytona.list({ labels: { team } })) found.push(s.id);
    assert.deepEqual(found, [sandbox.id]);
    const none = [];
    for await (const s of daytona.list({ labels: { team: `${team}-nobody` } })) none.push(s.id);
    assert.deepEqual(none, []);
  });

  await check('get', async () => {
    const got = await daytona.get(sandbox.id);
    assert.equal(got.id, sandbox.id);
    assert.equal(got.state, 'started');
    assert.equal(got.labels.team, team);
  });

  await check('process/execute', async () => {
    const r = await sandbox.process.executeCommand('echo hello; echo "$FOO-$X"', undefined, { X: '1' }, 10);
    assert.equal(r.exitCode, 0);
    assert.equal(r.result, 'hello\nbar-1\n');
    const failing = await sandbox.process.executeCommand('exit 3');
    assert.equal(failing.exitCode, 3);
  });

  await check('session create + sync exec', async () => {
    await sandbox.process.createSession('s1');
    const r = await sandbox.process.executeSessionCommand('s1', { command: 'echo out; echo err 1>&2', runAsync: false });
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
    const session = await sandbox.process.getSession('s1');
    assert.equal(session.sessionId, 's1');
    assert.equal(session.commands.length, 1);
    assert.equal(session.commands[0].exitCode, 0);
  });

  let preview;
  await check('async server start + preview link + /alive through the proxy', async () => {
    await sandbox.process.createSession('action-execution-server');
    const started = await sandbox.process.executeSessionCommand('action-execution-server', {
      command: 'runbox-server --port 4444 --working-dir /workspace',
      runAsync: true,
    });
    assert.equal(typeof started.cmdId, 'string');
    const status = await sandbox.process.getSessionCommand('action-execution-server', started.cmdId);
    assert.equal(status.exitCode, undefined, 'a running command has no exit code');
    preview = await sandbox.getPreviewLink(4444);
    assert.match(preview.url, /^http:\/\/127\.0\.0\.1:\d+\//);
    assert.equal(typeof preview.token, 'string');
    const denied = await fetch(`${preview.url}/alive`);
    assert.equal(denied.status, 401, 'a private sandbox needs the preview token');
    const alive = await fetch(`${preview.url}/alive`, { headers: { 'X-Daytona-Preview-Token': preview.token } });
    assert.equal(alive.status, 200);
  });

  await check('files upload + download', async () => {
    await sandbox.fs.uploadFile(Buffer.from('hello file\n'), '/home/daytona/a.txt');
    const content = await sandbox.fs.downloadFile('/home/daytona/a.txt');
    assert.equal(content.toString(), 'hello file\n');
    const info = await sandbox.fs.getFileDetails('/home/daytona/a.txt');
    assert.equal(info.size, 11);
  });

  await check('stop', async () => {
    await sandbox.stop();
    assert.equal(sandbox.state, 'stopped');
    const got = await daytona.get(sandbox.id);
    assert.equal(got.state, 'stopped');
    const proxied = await fetch(`${preview.url}/alive`, { headers: { 'X-Daytona-Preview-Token': preview.token } });
    assert.equal(proxied.status, 502, 'a stopped sandbox has no server behind the proxy');
  });

  await check('start', async () => {
    await sandbox.start();
    assert.equal(sandbox.state, 'started');
    const r = await sandbox.process.executeCommand('echo again');
    assert.equal(r.result, 'again\n');
  });

  await check('delete', async () => {
    await sandbox.delete(60, true); // wait: polls until destroyed (a 404 counts as destroyed)
    await assert.rejects(daytona.get(sandbox.id), DaytonaNotFoundError);
    const left = [];
    for await (const s of daytona.list({ labels: { team } })) left.push(s.id);
    assert.deepEqual(left, []);
  });

  await check('unknown id -> not found', async () => {
    await assert.rejects(daytona.get('no-such-sandbox'), (e) => {
      assert.ok(e instanceof DaytonaNotFoundError, `expected DaytonaNotFoundError, got ${e?.constructor?.name}`);
      assert.equal(e.statusCode, 404);
      assert.match(e.message, /no-such-sandbox/);
      return true;
    });
  });

  await check('wrong key -> authentication error', async () => {
    const bad = new Daytona({ apiKey: 'dtn_wrong', apiUrl, target: 'us', useDeprecatedPolling: true });
    await assert.rejects(bad.get('anything'), DaytonaAuthenticationError);
  });
}

main().then(
  () => {
    console.log('conformance: all checks passed');
    process.exit(0);
  },
  (e) => {
    console.error(`not ok - ${step}: ${e?.stack ?? e}`);
    process.exit(1);
  },
);
