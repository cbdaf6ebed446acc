// Runs the official Runloop SDK (@runloop/api-client, pinned in package.json) against a Runloop
// API at RUNLOOP_BASE_URL (runbox's FakeRunloop) and exits non-zero on the first mismatch.
//
// Environment: RUNLOOP_BASE_URL (e.g. http://127.0.0.1:43123), RUNLOOP_API_KEY (the fake's key),
// RUNLOOP_TUNNEL_URL (optional template with {port} and {tunnel_key}; default: the fake's
// path-based form "<base>/tunnel/{port}-{tunnel_key}").
// The SDK speaks HTTP/2 by default even for http:// URLs; the fake is HTTP/1.1, so http2: false
// (provider-apis.md §3.1, §5).
import Runloop from '@runloop/api-client';

const baseURL = process.env.RUNLOOP_BASE_URL;
const apiKey = process.env.RUNLOOP_API_KEY;
if (!baseURL || !apiKey) {
  console.error('conformance: set RUNLOOP_BASE_URL and RUNLOOP_API_KEY');
  process.exit(2);
}
const tunnelTemplate = process.env.RUNLOOP_TUNNEL_URL || `${baseURL}/tunnel/{port}-{tunnel_key}`;

const client = new Runloop({ baseURL, bearerToken: apiKey, http2: false, maxRetries: 2, timeout: 20000 });

let step = 'start';
let checks = 0;
function check(cond, what) {
  checks++;
  if (!cond) throw new Error(`${step}: ${what}`);
}

const created = [];
async function main() {
  step = 'create';
  const box = await client.devboxes.create({
    name: 'conformance-box',
    entrypoint: 'runbox-server 4444 --working-dir /workspace',
    environment_variables: { FOO: 'bar' },
    metadata: { 'openhands-sid': 'conformance-box' },
    launch_parameters: { resource_size_request: 'SMALL', launch_commands: ['mkdir -p /workspace'] },
  });
  created.push(box.id);
  check(typeof box.id === 'string' && box.id.startsWith('dbx_'), `id looks like dbx_..., got ${box.id}`);
  check(['provisioning', 'queued', 'initializing'].includes(box.status), `fresh devbox is booting, got ${box.status}`);
  check(box.name === 'conformance-box', 'name echoed');
  check(box.metadata['openhands-sid'] === 'conformance-box', 'metadata echoed');
  check(Array.isArray(box.state_transitions), 'state_transitions is an array');

  step = 'retrieve';
  const got = await client.devboxes.retrieve(box.id);
  check(got.id === box.id && got.name === 'conformance-box', 'retrieve returns the devbox');
  check(got.launch_parameters.resource_size_request === 'SMALL', 'launch_parameters kept');

  step = 'wait for running (long-poll, 408 re-poll)';
  const running = await client.devboxes.awaitRunning(box.id);
  check(running.status === 'running', `awaitRunning ends running, got ${running.status}`);
  const statuses = running.state_transitions.map((t) => t.status);
  check(statuses.join(',') === 'provisioning,initializing,running', `transitions ${statuses.join(',')}`);

  step = 'list (pagination with starting_after)';
  const second = await client.devboxes.create({ name: 'conformance-box-2' });
  created.push(second.id);
  const seen = [];
  for await (const d of client.devboxes.list({ limit: 1 })) seen.push(d.id);
  check(seen.includes(box.id) && seen.includes(second.id), `auto-pagination visits both devboxes (${seen})`);
  check(new Set(seen).size === seen.length, 'no devbox listed twice');
  const page = await client.devboxes.list({ limit: 1 });
  check(page.devboxes.length === 1 && page.has_more === true, 'first page of one has_more');
  const onlyRunning = [];
  for await (const d of client.devboxes.list({ status: 'running', limit: 10 })) onlyRunning.push(d);
  check(onlyRunning.every((d) => d.status === 'running'), 'status filter');
  check(onlyRunning.some((d) => d.id === box.id), 'running devbox listed with status=running');

  step = 'tunnel';
  const tunnel = await client.devboxes.enableTunnel(box.id, { auth_mode: 'open' });
  check(typeof tunnel.tunnel_key === 'string' && tunnel.tunnel_key.length > 0, 'tunnel_key');
  check(tunnel.auth_mode === 'open', 'auth_mode echoed');
  const withTunnel = await client.devboxes.retrieve(box.id);
  check(withTunnel.tunnel && withTunnel.tunnel.tunnel_key === tunnel.tunnel_key, 'devbox view carries the tunnel');
  const tunnelUrl = tunnelTemplate.replace('{port}', '4444').replace('{tunnel_key}', tunnel.tunnel_key);
  const alive = await fetch(`${tunnelUrl}/alive`);
  check(alive.status === 200, `GET <tunnel>/alive -> ${alive.status}`);
  const aliveBody = await alive.json();
  check(aliveBody.status === 'ok', `alive body ${JSON.stringify(aliveBody)}`);
  const authTunnelBox = await client.devboxes.create({ name: 'conformance-box-3' });
  created.push(authTunnelBox.id);
  const authTunnel = await client.devboxes.enableTunnel(authTunnelBox.id, { auth_mode: 'authenticated' });
  check(authTunnel.auth_mode === 'authenticated' && typeof authTunnel.auth_token === 'string', 'authenticated tunnel has a token');

  step = 'execute';
  const ex = await client.devboxes.executeAndAwaitCompletion(box.id, { command: 'echo hello; echo oops >&2' });
  check(ex.status === 'completed', `execute completes, got ${ex.status}`);
  check(ex.exit_status === 0, `exit_status 0, got ${ex.exit_status}`);
  check(ex.stdout === 'hello\n', `stdout ${JSON.stringify(ex.stdout)}`);
  check(ex.stderr === 'oops\n', `stderr ${JSON.stringify(ex.stderr)}`);
  const failing = await client.devboxes.executeAndAwaitCompletion(box.id, { command: 'exit 7' });
  check(failing.exit_status === 7, `exit status 7, got ${failing.exit_status}`);
  const sync = await client.devboxes.executeSync(box.id, { command: 'echo "$FOO"' });
  check(sync.exit_status === 0 && sync.stdout === 'bar\n', `execute_sync sees env var, got ${JSON.stringify(sync)}`);
  const started = await client.devboxes.executeAsync(box.id, { command: 'sleep 0.2; echo later' });
  check(typeof started.execution_id === 'string', 'execute_async returns an execution id');
  const done = await client.devboxes.waitForCommand(box.id, started.execution_id, { statuses: ['completed'] });
  check(done.status === 'completed' && done.stdout === 'later\n', `waitForCommand ${JSON.stringify(done)}`);

  step = 'files';
  await client.devboxes.writeFileContents(box.id, { file_path: 'notes/a.txt', contents: 'hello file' });
  const text = await client.devboxes.readFileContents(box.id, { file_path: 'notes/a.txt' });
  check(text === 'hello file', `read_file_contents ${JSON.stringify(text)}`);

  step = 'suspend and resume';
  const suspending = await client.devboxes.suspend(box.id);
  check(suspending.status === 'suspending', `suspend answers suspending, got ${suspending.status}`);
  const suspended = await client.devboxes.awaitSuspended(box.id);
  check(suspended.status === 'suspended', `awaitSuspended ends suspended, got ${suspended.status}`);
  const asleep = await fetch(`${tunnelUrl}/alive`);
  check(asleep.status === 502, `tunnel of a suspended devbox -> 502, got ${asleep.status}`);
  const resuming = await client.devboxes.resume(box.id);
  check(resuming.status === 'resuming', `resume answers resuming, got ${resuming.status}`);
  const resumed = await client.devboxes.awaitRunning(box.id);
  check(resumed.status === 'running', `awaitRunning after resume, got ${resumed.status}`);
  const kept = await client.devboxes.readFileContents(box.id, { file_path: 'notes/a.txt' });
  check(kept === 'hello file', 'files survive suspend/resume');
  const awake = await fetch(`${tunnelUrl}/alive`);
  check(awake.status === 200, `tunnel works again after resume, got ${awake.status}`);

  step = 'errors';
  try {
    await client.devboxes.retrieve('dbx_missing');
    check(false, 'unknown id must fail');
  } catch (e) {
    check(e instanceof Runloop.NotFoundError && e.status === 404, `unknown id -> 404 NotFoundError, got ${e}`);
  }
  const badClient = new Runloop({ baseURL, bearerToken: 'wrong-key', http2: false, maxRetries: 0 });
  try {
    await badClient.devboxes.list();
    check(false, 'wrong key must fail');
  } catch (e) {
    check(e instanceof Runloop.AuthenticationError && e.status === 401, `wrong key -> 401, got ${e}`);
  }

  step = 'shutdown';
  for (const id of created) {
    const down = await client.devboxes.shutdown(id);
    check(down.status === 'shutdown', `shutdown returns status shutdown, got ${down.status}`);
  }
  const after = await client.devboxes.retrieve(box.id);
  check(after.status === 'shutdown' && after.shutdown_reason === 'api_shutdown', 'shutdown is recorded');
  try {
    await client.devboxes.awaitRunning(box.id);
    check(false, 'awaitRunning on a shut down devbox must fail');
  } catch (e) {
    check(/non-running state shutdown/.test(String(e)), `awaitRunning error names the state, got ${e}`);
  }
  const tunnelAfter = await fetch(`${tunnelUrl}/alive`);
  check(tunnelAfter.status === 502, `tunnel of a shut down devbox -> 502, got ${tunnelAfter.status}`);
  created.length = 0;
}

try {
  await main();
  console.log(`conformance: OK (${checks} checks)`);
} catch (e) {
  console.error(`conformance: FAILED: ${e && e.stack ? e.stack : e}`);
  for (const id of created) {
    try {
      await client.devboxes.shutdown(id);
    } catch {}
  }
  process.exit(1);
}
