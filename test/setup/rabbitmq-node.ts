// The test run's own RabbitMQ node: its own node name, epmd, AMQP and
// distribution ports, cookie, config, plugins file, and data and log
// directories, all under one temporary directory. The AMQP tests never talk
// to (let alone stop) a broker they did not start.
//
// globalSetup (rabbitmq.ts) makes the directory; the first AMQP test file
// that needs the node starts it (so runs without AMQP files pay nothing), and
// globalSetup's teardown stops it, its epmd, and removes the directory.

import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { freePorts } from '../../src/cli/ports.ts';

const NODE_NAME = 'weft-test@localhost';
const START_TIMEOUT_MS = 180_000;
/**
 * A rabbitmqctl command's bound: each boots an Erlang VM, and beside a CPU
 * hog (load 20) `start_app` took 59 s and `await_startup` as long as it is
 * told to wait (restart.test.ts tells it 300 s).
 */
const CTL_TIMEOUT_MS = 600_000;

/** What globalSetup hands to the test files: the run's directory, or why there is no node. */
export type RabbitmqSetup = { dir: string } | { missing: string };

declare module 'vitest' {
  export interface ProvidedContext {
    weftRabbitmq: RabbitmqSetup;
  }
}

export const INSTALL_HINT =
  'rabbitmq-server is not on PATH, so the AMQP tests are skipped; install it (Debian/Ubuntu: sudo apt-get install rabbitmq-server) and run npm test again';

/** The directory of the real RabbitMQ scripts (Debian's /usr/sbin entries are wrappers that su to another user). */
export function rabbitmqScripts(): string | undefined {
  for (const entry of (process.env.PATH ?? '').split(delimiter)) {
    if (entry === '') continue;
    const candidate = join(entry, 'rabbitmq-server');
    if (existsSync(candidate)) return dirname(realpathSync(candidate));
  }
  return undefined;
}

interface NodeState {
  readonly scripts: string;
  readonly amqpPort: number;
  readonly epmdPort: number;
  readonly serverPid: number;
  readonly epmdPid: number;
}

const stateFile = (dir: string): string => join(dir, 'node.json');

function readState(dir: string): NodeState | undefined {
  try {
    return JSON.parse(readFileSync(stateFile(dir), 'utf8')) as NodeState;
  } catch {
    return undefined;
  }
}

/** The environment both the server and rabbitmqctl need to find this node and only it. */
function nodeEnv(dir: string, state: Pick<NodeState, 'amqpPort' | 'epmdPort'> & { distPort?: number }): NodeJS.ProcessEnv {
  return {
    ...process.env,
    // The Erlang cookie lives in $HOME: a cookie of our own.
    HOME: dir,
    ERL_EPMD_PORT: String(state.epmdPort),
    ERL_EPMD_ADDRESS: '127.0.0.1',
    RABBITMQ_NODENAME: NODE_NAME,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(state.amqpPort),
    ...(state.distPort === undefined ? {} : { RABBITMQ_DIST_PORT: String(state.distPort) }),
    // Not /etc/rabbitmq/*: the system's files could name another node or ports.
    RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
    RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, 'advanced.config'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
  };
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv, timeout = 90_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, timeout }, (error, stdout, stderr) =>
      error ? reject(new Error(`${file} ${args.join(' ')}: ${error.message}\n${stderr}`)) : resolve(stdout),
    );
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A directory only one process can create; a holder that no longer exists loses it. */
export async function lock(path: string): Promise<() => void> {
  for (;;) {
    try {
      mkdirSync(path);
      writeFileSync(join(path, 'pid'), String(process.pid));
      return () => rmSync(path, { recursive: true, force: true });
    } catch {
      let holder = NaN;
      try {
        holder = Number(readFileSync(join(path, 'pid'), 'utf8'));
      } catch {
        // being created or removed right now: look again
      }
      if (Number.isInteger(holder) && !alive(holder)) rmSync(path, { recursive: true, force: true });
      else await pause(200);
    }
  }
}

export interface RabbitmqNode {
  readonly url: string;
  /** Runs this node's rabbitmqctl with `args`, resolving with its output. */
  ctl(...args: string[]): Promise<string>;
}

function handle(dir: string, state: NodeState): RabbitmqNode {
  const env = nodeEnv(dir, state);
  return {
    url: `amqp://guest:guest@127.0.0.1:${state.amqpPort}`,
    ctl: (...args) => run(join(state.scripts, 'rabbitmqctl'), ['-n', NODE_NAME, ...args], env, CTL_TIMEOUT_MS),
  };
}

/** The run's node, started by the first caller and shared by the rest. */
export async function startedNode(dir: string): Promise<RabbitmqNode> {
  const unlock = await lock(join(dir, 'start.lock'));
  try {
    const existing = readState(dir);
    if (existing !== undefined) return handle(dir, existing);
    const scripts = rabbitmqScripts();
    if (scripts === undefined) throw new Error(INSTALL_HINT);

    for (const sub of ['mnesia', 'log']) mkdirSync(join(dir, sub), { recursive: true });
    writeFileSync(join(dir, 'rabbitmq-env.conf'), '');
    writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
    // guest from loopback only (the default, said out loud); a nearly full
    // /tmp must not raise the disk alarm that blocks publishers.
    writeFileSync(join(dir, 'rabbitmq.conf'), 'loopback_users.guest = true\ndisk_free_limit.absolute = 1MB\n');

    const [amqpPort, distPort, epmdPort] = (await freePorts(3)) as [number, number, number];
    const env = nodeEnv(dir, { amqpPort, distPort, epmdPort });
    const output = openSync(join(dir, 'log', 'server.out'), 'a');
    // Our own epmd on its own port, so nothing is left running after the run
    // and no other Erlang node on the machine sees this one.
    const epmd = spawn('epmd', ['-address', '127.0.0.1', '-port', String(epmdPort)], {
      env,
      detached: true,
      stdio: ['ignore', output, output],
    });
    const server = spawn(join(scripts, 'rabbitmq-server'), [], { env, detached: true, stdio: ['ignore', output, output], cwd: dir });
    closeSync(output);
    epmd.unref();
    server.unref();
    const state: NodeState = { scripts, amqpPort, epmdPort, serverPid: server.pid!, epmdPid: epmd.pid! };
    writeFileSync(stateFile(dir), JSON.stringify(state));
    const node = handle(dir, state);

    // await_startup fails at once while the node is not registered yet: retry.
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      try {
        await node.ctl('await_startup', '--timeout', '60');
        return node;
      } catch (error) {
        if (!alive(state.serverPid) || Date.now() > deadline) {
          const log = readFileSync(join(dir, 'log', 'server.out'), 'utf8').split('\n').slice(-30).join('\n');
          throw new Error(`the test RabbitMQ node did not start (${(error as Error).message.split('\n')[0]}):\n${log}`);
        }
        await pause(500);
      }
    }
  } finally {
    unlock();
  }
}

/** Stops the run's node (if one was started) and its epmd, and removes the directory. */
export async function stopNode(dir: string): Promise<void> {
  const state = readState(dir);
  if (state !== undefined) {
    await handle(dir, state)
      .ctl('shutdown')
      .catch(() => {});
    const deadline = Date.now() + 30_000;
    while (alive(state.serverPid) && Date.now() < deadline) await pause(100);
    for (const pid of [state.serverPid, state.epmdPid]) {
      try {
        // detached: each leads its own process group; end the group.
        process.kill(-pid, alive(pid) && pid === state.serverPid ? 'SIGKILL' : 'SIGTERM');
      } catch {
        // already gone
      }
    }
  }
  rmSync(dir, { recursive: true, force: true });
}
