// Runs Modal's official JS SDK (npm `modal`, pinned to 0.11.1 in package.json: the unpinned name
// is an unrelated package) against a Modal control plane at MODAL_SERVER_URL (runbox's FakeModal)
// and exits non-zero on the first mismatch.
//
// Environment, set before the SDK is imported (it reads its profile at import time, §6.2):
// MODAL_SERVER_URL (http://127.0.0.1:PORT, plaintext h2c), MODAL_TOKEN_ID, MODAL_TOKEN_SECRET,
// MODAL_CONFIG_PATH (a file that does not exist, so no ~/.modal.toml is read).
// Covers: app from name, image from registry, sandbox create with ports, env and tags, tunnels
// (reaching the real action server behind one), exec with stdout/stderr/exit code and env, tags
// set/get, list by tags (paging to the end), poll/wait, terminate, an unknown sandbox.
for (const name of ['MODAL_SERVER_URL', 'MODAL_TOKEN_ID', 'MODAL_TOKEN_SECRET', 'MODAL_CONFIG_PATH']) {
  if (!process.env[name]) {
    console.error(`conformance: set ${name}`);
    process.exit(2);
  }
}
const { ModalClient, NotFoundError } = await import('modal');

const modal = new ModalClient();
const serverPort = new URL(process.env.MODAL_SERVER_URL).port;

let step = 'start';
let checks = 0;
function check(cond, what) {
  checks++;
  if (!cond) throw new Error(`${step}: ${what}`);
}
const sameTags = (a, b) => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

const created = [];
async function main() {
  step = 'app from name';
  const app = await modal.apps.fromName('runbox-conformance', { createIfMissing: true });
  check(typeof app.appId === 'string' && app.appId.startsWith('ap-'), `app id ap-..., got ${app.appId}`);
  const again = await modal.apps.fromName('runbox-conformance', { createIfMissing: true });
  check(again.appId === app.appId, 'the same name gives the same app');

  step = 'image from registry';
  const image = modal.images.fromRegistry('python:3.12-slim');

  step = 'sandbox create (action server entrypoint, encrypted port, env, tags)';
  const sb = await modal.sandboxes.create(app, image, {
    command: ['runbox-server', '--port', '3000'],
    encryptedPorts: [3000],
    env: { SESSION_API_KEY: 'sk-conformance', FOO: 'bar' },
    tags: { OpenHands_SID: 'conformance' },
    timeoutMs: 600000,
  });
  created.push(sb);
  check(typeof sb.sandboxId === 'string' && sb.sandboxId.startsWith('sb-'), `sandbox id sb-..., got ${sb.sandboxId}`);
  check(!/^sb-[0-9A-Za-z]{22}$/.test(sb.sandboxId), 'a V2 sandbox id (not the V1 shape)');
  check(image.imageId.startsWith('im-'), `the image was built, id ${image.imageId}`);

  step = 'tunnels';
  const tunnels = await sb.tunnels();
  const tunnel = tunnels[3000];
  check(tunnel !== undefined, `a tunnel for port 3000, got ${JSON.stringify(Object.keys(tunnels))}`);
  check(tunnel.url.startsWith('https://127.0.0.1'), `tunnel url on 127.0.0.1, got ${tunnel.url}`);
  const [host, port] = tunnel.tcpSocket;
  const alive = await fetch(`http://${host}:${port}/alive`);
  check(alive.status === 200, `the action server answers /alive through the tunnel, got ${alive.status}`);
  const refused = await fetch(`http://${host}:${port}/execute_action`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'X-Session-API-Key': 'wrong' },
    body: '{}',
  });
  check(refused.status === 401 || refused.status === 403, `a wrong session key is refused, got ${refused.status}`);

  step = 'exec: stdout, stderr, exit code, env';
  const proc = await sb.exec(['sh', '-c', 'echo "out:$FOO"; echo err >&2; exit 3']);
  const [out, err] = await Promise.all([proc.stdout.readText(), proc.stderr.readText()]);
  const code = await proc.wait();
  check(out === 'out:bar\n', `stdout, got ${JSON.stringify(out)}`);
  check(err === 'err\n', `stderr, got ${JSON.stringify(err)}`);
  check(code === 3, `exit code 3, got ${code}`);
  const withEnv = await sb.exec(['sh', '-c', 'echo "$X:$SESSION_API_KEY"'], { env: { X: 'y' } });
  const envOut = await withEnv.stdout.readText();
  check((await withEnv.wait()) === 0, 'exit code 0 is reported (the oneof is on the wire)');
  check(envOut === 'y:\n', `exec env applied, session key not in the shell, got ${JSON.stringify(envOut)}`);
  const workdir = await sb.exec(['pwd'], { workdir: '/tmp' });
  check((await workdir.stdout.readText()) === '/tmp\n', 'exec workdir');
  check((await workdir.wait()) === 0, 'pwd exits 0');

  step = 'tags set/get';
  check(sameTags(await sb.getTags(), { OpenHands_SID: 'conformance' }), 'tags from create');
  await sb.setTags({ OpenHands_SID: 'conformance', role: 'main' });
  check(sameTags(await sb.getTags(), { OpenHands_SID: 'conformance', role: 'main' }), 'setTags then getTags');
  await sb.setTags({ OpenHands_SID: 'conformance' });
  check(sameTags(await sb.getTags(), { OpenHands_SID: 'conformance' }), 'setTags replaces the whole set');

  step = 'list by tags';
  const other = await modal.sandboxes.create(app, image, { tags: { OpenHands_SID: 'other' } });
  created.push(other);
  const listed = async (params) => {
    const ids = [];
    for await (const s of modal.sandboxes.list(params)) {
      ids.push(s.sandboxId);
      if (ids.length > 100) break;  // a list that never ends fails below instead of hanging
    }
    return ids;
  };
  const mine = await listed({ appId: app.appId, tags: { OpenHands_SID: 'conformance' } });
  check(JSON.stringify(mine) === JSON.stringify([sb.sandboxId]), `by tag: exactly the first, got ${mine}`);
  const all = await listed({ appId: app.appId });
  check(JSON.stringify(all) === JSON.stringify([other.sandboxId, sb.sandboxId]), `all, newest first, got ${all}`);

  step = 'poll, terminate, wait';
  check((await sb.poll()) === null, 'poll of a running sandbox is null');
  await sb.terminate();
  check((await sb.wait()) === 137, 'a terminated sandbox exits 137');
  check((await sb.poll()) === 137, 'poll after terminate');
  await other.terminate();
  created.length = 0;
  const gone = await fetch(`http://${host}:${port}/alive`).then((r) => r.status, () => 'refused');
  check(gone === 'refused', `the tunnel target is gone with the sandbox, got ${gone}`);
  check((await listed({ appId: app.appId })).length === 0, 'no running sandbox is listed');

  step = 'an unknown sandbox';
  const ghost = await modal.sandboxes.fromId('sb-v2-00000000000000000000');
  try {
    await ghost.getTags();
    check(false, 'getTags of an unknown sandbox throws');
  } catch (e) {
    check(e instanceof NotFoundError || e.code === 5, `NOT_FOUND, got ${e}`);
  }
  try {
    await modal.sandboxes.fromName('runbox-conformance', 'no-such-sandbox');
    check(false, 'fromName of an unknown name throws');
  } catch (e) {
    check(e instanceof NotFoundError, `fromName: NotFoundError, got ${e}`);
  }
}

try {
  await main();
  console.log(`conformance: OK (${checks} checks, server port ${serverPort})`);
  modal.close();
} catch (e) {
  console.error(`conformance: FAILED: ${e && e.stack ? e.stack : e}`);
  for (const sb of created) {
    try {
      await sb.terminate();
    } catch {}
  }
  process.exit(1);
}
process.exit(0);
