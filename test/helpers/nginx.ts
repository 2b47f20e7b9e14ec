/**
 * A real nginx from Debian (nginx-light) on 127.0.0.1, with a config the test writes:
 * the web-service probes, the TLS checks and the access-log tail all run against it.
 */
import { spawn } from 'node:child_process';
import { writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, startProcess, tempDir, type Running } from './procs.js';

export const NGINX = '/usr/sbin/nginx';

export interface Nginx extends Running {
  /** The directory nginx runs in (its prefix): logs/, the config, anything the test puts there. */
  dir: string;
  /** The port of the first server block: `/stub_status` answers there. */
  port: number;
  /** `nginx -s reopen`: reopens its log files, as logrotate's postrotate does. */
  reopen(): Promise<void>;
  /** `nginx -s reload` after the test rewrote part of the config. */
  reload(): Promise<void>;
  /** Starts it again after stop(), same config, same ports; `child` is then the new process. */
  restart(): Promise<void>;
}

export interface NginxOptions {
  /**
   * Extra directives inside `http { }` before the status server: more `server` blocks,
   * `log_format` lines. Use `{{dir}}` for the prefix directory.
   */
  http?: string;
  /** Extra locations inside the status server (the one on `port`). */
  locations?: string;
  /** The status server's access_log directive; off by default. */
  accessLog?: string;
  /** Puts files the config names (certificates) under the prefix before nginx starts. */
  prepare?(dir: string): Promise<void>;
}

function signal(dir: string, sig: 'reopen' | 'reload'): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      NGINX,
      ['-c', join(dir, 'nginx.conf'), '-p', dir, '-g', `pid ${dir}/nginx.pid;`, '-s', sig],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`nginx -s ${sig} exited ${code}: ${err}`)),
    );
  });
}

/** Starts nginx in the foreground under a temp prefix; resolves once /stub_status answers. */
export async function startNginx(opts: NginxOptions = {}): Promise<Nginx> {
  const dir = await tempDir('lookout-nginx-');
  await mkdir(join(dir, 'logs'), { recursive: true });
  const port = await freePort();
  const fill = (s: string) => s.replaceAll('{{dir}}', dir);
  const conf = `
worker_processes 1;
error_log ${dir}/logs/error.log warn;
events { worker_connections 1024; }
http {
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  ${fill(opts.http ?? '')}
  server {
    listen 127.0.0.1:${port};
    access_log ${fill(opts.accessLog ?? 'off')};
    location = /stub_status { stub_status; }
    ${fill(opts.locations ?? '')}
  }
}
`;
  await opts.prepare?.(dir);
  await writeFile(join(dir, 'nginx.conf'), conf);
  const start = () =>
    startProcess(
      NGINX,
      ['-c', join(dir, 'nginx.conf'), '-p', dir, '-g', `daemon off; pid ${dir}/nginx.pid;`],
      { readyPath: '/stub_status', port, dir },
    );
  const nginx: Nginx = {
    ...(await start()),
    dir,
    port,
    reopen: () => signal(dir, 'reopen'),
    reload: () => signal(dir, 'reload'),
    restart: async () => {
      const again = await start();
      Object.assign(nginx, { child: again.child, output: again.output, stop: again.stop });
    },
  };
  return nginx;
}
