// Runs the official E2B TypeScript SDK (e2b, pinned in package.json) against runbox's FakeE2B and
// exits non-zero on the first mismatch.
//
//   RUNBOX_FAKE_URL=http://127.0.0.1:PORT [RUNBOX_FAKE_API_KEY=e2b_test] node conformance.mjs
//
// The fake serves the API and envd on one port (E2B's localhost mode): E2B_API_URL and
// E2B_SANDBOX_URL are both RUNBOX_FAKE_URL.
// Flow: create (metadata, envs) -> commands.run (stdout, stderr, exit code, envs, cwd) -> a
// non-zero exit (CommandExitError) -> a background command (list, kill, its end) -> files
// write/read/list/exists (+ makeDir/rename/remove) -> setTimeout + getInfo -> list by metadata
// -> pause/connect (files and state kept) -> kill -> an unknown id (not found) -> a wrong key
// (authentication) -> a wrong envd token.
import assert from 'node:assert/strict';
import {
  Sandbox,
  CommandExitError,
  SandboxNotFoundError,
  NotFoundError,
  AuthenticationError,
} from 'e2b';

const base = process.env.RUNBOX_FAKE_URL;
if (!base) {
  console.error('RUNBOX_FAKE_URL is not set (e.g. http://127.0.0.1:PORT from `runbox-fake e2b`)');
  process.exit(2);
}
const apiKey = process.env.RUNBOX_FAKE_API_KEY ?? 'e2b_test';
const url = base.replace(/\/+$/, '');
const opts = { apiKey, apiUrl: url, sandboxUrl: url, requestTimeoutMs: 20000 };

let step = 'setup';
const check = async (name, fn) => {
  step = name;
  await fn();
  console.log(`ok - ${name}`);
};

const waitFor = async (what, pred, ms = 10000) => {
  const end = Date.now() + ms;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

async function main() {
  const team = `conformance-${process.pid}-${Date.now()}`;
  let sbx;
  const created = [];

  await check('create with metadata and envs', async () => {
    sbx = await Sandbox.create('base', {
      ...opts,
      metadata: { team, role: 'main' },
      envs: { FOO: 'bar' },
      timeoutMs: 120_000,
    });
    created.push(sbx.sandboxId);
    assert.ok(sbx.sandboxId.length > 0);
    assert.equal(await sbx.isRunning(), true);
  });

  await check('commands.run: stdout, stderr, exit code, envs, cwd', async () => {
    const r = await sbx.commands.run('echo "out $FOO $X"; echo err >&2; pwd', {
      envs: { X: '1' },
      cwd: '/tmp',
    });
    assert.equal(r.exitCode, 0);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines[0], 'out bar 1');
    assert.match(lines[1], /\/tmp$/);
    assert.equal(r.stderr, 'err\n');
    assert.equal(r.error, undefined);
  });

  await check('commands.run: streamed output arrives in order', async () => {
    const seen = [];
    const r = await sbx.commands.run('for i in 1 2 3; do echo line$i; sleep 0.05; done', {
      onStdout: (d) => seen.push(d),
    });
    assert.equal(r.stdout, 'line1\nline2\nline3\n');
    assert.equal(seen.join(''), r.stdout);
    assert.ok(seen.length >= 2, `expected several data events, got ${seen.length}`);
  });

  await check('commands.run: a non-zero exit throws CommandExitError', async () => {
    await assert.rejects(
      sbx.commands.run('echo partial; echo bad >&2; exit 3'),
      (e) => {
        assert.ok(e instanceof CommandExitError, `got ${e?.constructor?.name}: ${e?.message}`);
        assert.equal(e.exitCode, 3);
        assert.equal(e.stdout, 'partial\n');
        assert.equal(e.stderr, 'bad\n');
        return true;
      },
    );
  });

  await check('commands.run: a background command keeps running, is listed, is killed', async () => {
    const handle = await sbx.commands.run('echo started; sleep 60', { background: true });
    assert.ok(handle.pid > 0);
    await waitFor('the background output', async () => handle.stdout === 'started\n');
    const list = await sbx.commands.list();
    const mine = list.find((p) => p.pid === handle.pid);
    assert.ok(mine, 'the background process is listed');
    assert.deepEqual(mine.args, ['-l', '-c', 'echo started; sleep 60']);
    assert.equal(await sbx.commands.kill(handle.pid), true);
    await assert.rejects(handle.wait(), (e) => {
      assert.ok(e instanceof CommandExitError, `got ${e?.constructor?.name}: ${e?.message}`);
      assert.notEqual(e.exitCode, 0);
      return true;
    });
    assert.equal(await sbx.commands.kill(handle.pid), false);  // gone: not_found
    const after = await sbx.commands.list();
    assert.equal(after.find((p) => p.pid === handle.pid), undefined);
  });

  await check('commands.connect: a running command can be rejoined', async () => {
    const handle = await sbx.commands.run('sleep 0.3; echo later', { background: true });
    const again = await sbx.commands.connect(handle.pid);
    const r = await again.wait();
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, 'later\n');
    await handle.wait();
  });

  await check('files: write, read, list, exists, makeDir, rename, remove', async () => {
    const info = await sbx.files.write('/home/user/notes/a.txt', 'hello\n');
    assert.equal(info.path, '/home/user/notes/a.txt');
    assert.equal(await sbx.files.read('/home/user/notes/a.txt'), 'hello\n');
    const bytes = await sbx.files.read('/home/user/notes/a.txt', { format: 'bytes' });
    assert.equal(Buffer.from(bytes).toString(), 'hello\n');
    await sbx.files.write('rel.txt', 'relative');  // relative to /home/user
    assert.equal(await sbx.files.read('/home/user/rel.txt'), 'relative');
    const viaShell = await sbx.commands.run('cat notes/a.txt');  // the default cwd is the home
    assert.equal(viaShell.stdout, 'hello\n');
    const entries = await sbx.files.list('/home/user/notes');
    assert.deepEqual(entries.map((e) => e.name), ['a.txt']);
    assert.equal(entries[0].type, 'file');
    assert.equal(entries[0].size, 6);
    assert.equal(entries[0].path, '/home/user/notes/a.txt');
    assert.equal(await sbx.files.exists('/home/user/notes/a.txt'), true);
    assert.equal(await sbx.files.exists('/home/user/nope.txt'), false);
    assert.equal(await sbx.files.makeDir('/home/user/d'), true);
    assert.equal(await sbx.files.makeDir('/home/user/d'), false);  // already exists
    const moved = await sbx.files.rename('/home/user/rel.txt', '/home/user/d/r.txt');
    assert.equal(moved.path, '/home/user/d/r.txt');
    await sbx.files.remove('/home/user/d');
    assert.equal(await sbx.files.exists('/home/user/d/r.txt'), false);
    await assert.rejects(sbx.files.read('/home/user/missing.txt'), (e) => {
      assert.ok(e instanceof NotFoundError, `got ${e?.constructor?.name}: ${e?.message}`);
      return true;
    });
  });

  await check('setTimeout and getInfo', async () => {
    await sbx.setTimeout(300_000);
    const info = await sbx.getInfo();
    assert.equal(info.sandboxId, sbx.sandboxId);
    assert.equal(info.templateId, 'base');
    assert.equal(info.state, 'running');
    assert.deepEqual(info.metadata, { team, role: 'main' });
    const ttl = info.endAt.getTime() - Date.now();
    assert.ok(ttl > 250_000 && ttl <= 301_000, `endAt is ${ttl} ms away`);
  });

  await check('list by metadata, with pagination', async () => {
    for (let i = 0; i < 2; ++i) {
      const other = await Sandbox.create('base', { ...opts, metadata: { team, role: `extra${i}` } });
      created.push(other.sandboxId);
    }
    const unrelated = await Sandbox.create('base', { ...opts, metadata: { team: 'someone-else' } });
    created.push(unrelated.sandboxId);
    const paginator = Sandbox.list({ ...opts, query: { metadata: { team } }, limit: 2 });
    const ids = [];
    let pages = 0;
    while (paginator.hasNext) {
      const items = await paginator.nextItems();
      ++pages;
      for (const s of items) {
        assert.equal(s.metadata.team, team);
        ids.push(s.sandboxId);
      }
    }
    assert.equal(pages, 2);
    assert.deepEqual([...ids].sort(), created.slice(0, 3).sort());
    const mainOnly = await Sandbox.list({ ...opts, query: { metadata: { team, role: 'main' } } }).nextItems();
    assert.deepEqual(mainOnly.map((s) => s.sandboxId), [sbx.sandboxId]);
    for (const id of created.slice(1)) assert.equal(await Sandbox.kill(id, opts), true);
  });

  await check('pause and connect: state and files kept', async () => {
    assert.equal(await sbx.pause(), true);
    assert.equal(await Sandbox.pause(sbx.sandboxId, opts), false);  // already paused: 409
    const paused = await Sandbox.list({ ...opts, query: { metadata: { team }, state: ['paused'] } }).nextItems();
    assert.deepEqual(paused.map((s) => s.sandboxId), [sbx.sandboxId]);
    assert.equal(await sbx.isRunning(), false);
    const resumed = await Sandbox.connect(sbx.sandboxId, { ...opts, timeoutMs: 200_000 });
    assert.equal(await resumed.isRunning(), true);
    assert.equal((await resumed.getInfo()).state, 'running');
    assert.equal(await resumed.files.read('/home/user/notes/a.txt'), 'hello\n');
    const r = await resumed.commands.run('echo $FOO');
    assert.equal(r.stdout, 'bar\n');
    sbx = resumed;
  });

  await check('kill', async () => {
    assert.equal(await sbx.kill(), true);
    assert.equal(await sbx.isRunning(), false);
    assert.equal(await Sandbox.kill(sbx.sandboxId, opts), false);  // already gone: 404
  });

  await check('an unknown id is not found', async () => {
    await assert.rejects(Sandbox.getInfo('missing', opts), (e) => {
      assert.ok(e instanceof SandboxNotFoundError, `got ${e?.constructor?.name}: ${e?.message}`);
      return true;
    });
    await assert.rejects(Sandbox.connect('missing', opts), (e) => {
      assert.ok(e instanceof SandboxNotFoundError, `got ${e?.constructor?.name}: ${e?.message}`);
      return true;
    });
    assert.equal(await Sandbox.kill('missing', opts), false);
  });

  await check('a wrong API key is an authentication error', async () => {
    await assert.rejects(Sandbox.create('base', { ...opts, apiKey: 'e2b_wrong' }), (e) => {
      assert.ok(e instanceof AuthenticationError, `got ${e?.constructor?.name}: ${e?.message}`);
      return true;
    });
  });

  await check('a wrong envd access token is refused', async () => {
    const s = await Sandbox.create('base', opts);
    try {
      const forged = new Sandbox({ ...opts, sandboxId: s.sandboxId, envdVersion: '0.5.8', envdAccessToken: 'forged' });
      await assert.rejects(forged.commands.run('echo no'), (e) => {
        assert.ok(e instanceof AuthenticationError, `got ${e?.constructor?.name}: ${e?.message}`);
        return true;
      });
      await assert.rejects(forged.files.read('/home/user/x'), (e) => {
        assert.ok(e instanceof AuthenticationError, `got ${e?.constructor?.name}: ${e?.message}`);
        return true;
      });
    } finally {
      assert.equal(await s.kill(), true);
    }
  });

  const left = await Sandbox.list({ ...opts, query: { metadata: { team } } }).nextItems();
  assert.deepEqual(left, []);
  console.log('conformance: OK');
}

main().catch((e) => {
  console.error(`not ok - ${step}: ${e?.stack ?? e}`);
  process.exit(1);
});
