import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  osPrettyName,
  parseAuxvPageSize,
  parseConntrackEntries,
  parseFileNr,
  parseLoadavg,
  parseMeminfo,
  parseMounts,
  parseNetDev,
  parseOsRelease,
  parsePidStat,
  newPidStatScan,
  scanPidStat,
  parseStat,
  parseSysctlInteger,
  parseVmstat,
  processStateName,
  ProcfsParseError,
  unescapeMountField,
} from '../src/lib/procfs.js';

describe('parseStat', () => {
  const text = `cpu  7482 12 5452 73696 395 7 201 3 50 2
cpu0 3362 5 2376 37760 42 3 80 1 25 1
cpu1 4120 7 3076 35936 353 4 121 2 25 1
intr 218470 0 0
ctxt 484385
btime 1795556358
processes 7650
procs_running 2
`;

  test('reads the aggregate cpu line in seconds (USER_HZ=100), the cpu count and btime', () => {
    const s = parseStat(text);
    assert.deepEqual(s.cpu, {
      user: 74.82,
      nice: 0.12,
      system: 54.52,
      idle: 736.96,
      iowait: 3.95,
      irq: 0.07,
      softirq: 2.01,
      steal: 0.03,
      guest: 0.5,
      guestNice: 0.02,
    });
    assert.equal(s.cpuCount, 2);
    assert.equal(s.bootTime, 1795556358);
  });

  test('an old kernel with only four cpu columns reads the rest as 0', () => {
    const s = parseStat('cpu 100 0 50 1000\ncpu0 100 0 50 1000\nbtime 1\n');
    assert.equal(s.cpu.user, 1);
    assert.equal(s.cpu.idle, 10);
    assert.equal(s.cpu.iowait, 0);
    assert.equal(s.cpu.steal, 0);
  });

  test('does not count cpufreq-like lines that start with "cpu" but are not cpuN', () => {
    const s = parseStat('cpu 1 1 1 1\ncpu0 1 1 1 1\ncpu12 1 1 1 1\ncpux 1\nbtime 5\n');
    assert.equal(s.cpuCount, 2);
  });

  test('no cpu line or no btime is a parse error with a stable code', () => {
    assert.throws(() => parseStat('btime 1\n'), { code: 'LOOKOUT_PROCFS_PARSE' });
    assert.throws(() => parseStat('cpu 1 2 3 4\n'), ProcfsParseError);
  });
});

describe('parseLoadavg', () => {
  test('three averages and running/total', () => {
    assert.deepEqual(parseLoadavg('0.73 0.36 0.16 2/85 6257\n'), {
      load1: 0.73,
      load5: 0.36,
      load15: 0.16,
      running: 2,
      total: 85,
    });
  });
  test('garbage is an error', () => {
    assert.throws(() => parseLoadavg(''), { code: 'LOOKOUT_PROCFS_PARSE' });
    assert.throws(() => parseLoadavg('a b c'), ProcfsParseError);
  });
});

describe('parseMeminfo', () => {
  test('kB (KiB) to bytes; unitless counts kept; field names with parentheses', () => {
    const m = parseMeminfo(`MemTotal:       24683620 kB
MemAvailable:   24344524 kB
Active(anon):       1536 kB
HugePages_Total:       4
SwapTotal:             0 kB
`);
    assert.equal(m.get('MemTotal'), 24683620 * 1024);
    assert.equal(m.get('MemAvailable'), 24344524 * 1024);
    assert.equal(m.get('Active(anon)'), 1536 * 1024);
    assert.equal(m.get('HugePages_Total'), 4);
    assert.equal(m.get('SwapTotal'), 0);
    assert.equal(m.get('SwapFree'), undefined);
  });
  test('only the fields asked for, read as the whole parse reads them', () => {
    const text = `MemTotal:       24683620 kB
MemFree:        100 kB
HugePages_Total:       4
SwapTotal:             0 kB
`;
    assert.deepEqual(
      [...parseMeminfo(text, ['SwapTotal', 'MemTotal', 'HugePages_Total', 'SwapFree', 'Mem'])],
      [
        ['SwapTotal', 0],
        ['MemTotal', 24683620 * 1024],
        ['HugePages_Total', 4],
      ],
    );
  });
});

describe('parseNetDev', () => {
  const header = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
`;
  test('bytes, packets, errors, drops per device', () => {
    const devs = parseNetDev(
      header +
        `    lo:   23388      59    0    0    0     0          0         0    23388      59    0    0    0     0       0          0
  eth0: 196802175    6650    1    2    0     0          0         0   390121    3703    3    4    0     0       0          0
`,
    );
    assert.equal(devs.length, 2);
    assert.deepEqual(devs[1], {
      device: 'eth0',
      receiveBytes: 196802175,
      receivePackets: 6650,
      receiveErrors: 1,
      receiveDrops: 2,
      transmitBytes: 390121,
      transmitPackets: 3703,
      transmitErrors: 3,
      transmitDrops: 4,
    });
  });
  test('a counter glued to the colon (old kernels) and long device names', () => {
    const devs = parseNetDev(
      header + `veth1a2b3c4:4294967296 1 0 0 0 0 0 0 9007199254740991 2 0 0 0 0 0 0\n`,
    );
    assert.equal(devs[0]?.device, 'veth1a2b3c4');
    assert.equal(devs[0]?.receiveBytes, 4294967296);
    assert.equal(devs[0]?.transmitBytes, 9007199254740991);
  });
  test('a truncated line is an error, not a silent zero', () => {
    assert.throws(() => parseNetDev(header + '  eth0: 1 2 3\n'), { code: 'LOOKOUT_PROCFS_PARSE' });
  });
});

describe('parseVmstat', () => {
  test('name to count; a negative per-CPU drift value is kept; other lines ignored', () => {
    const v = parseVmstat(
      'nr_free_pages 1482818\npswpin 1024\noom_kill 3\nnr_zone_write_pending -2\n\n',
    );
    assert.deepEqual(
      [...v],
      [
        ['nr_free_pages', 1482818],
        ['pswpin', 1024],
        ['oom_kill', 3],
        ['nr_zone_write_pending', -2],
      ],
    );
  });
  test('a kernel without oom_kill (before 4.13): the field is absent, not 0', () => {
    assert.equal(parseVmstat('pgmajfault 5\n').get('oom_kill'), undefined);
    assert.equal(parseVmstat('pgmajfault 5\n', ['oom_kill']).get('oom_kill'), undefined);
  });
  test('only the fields asked for: whole names only, first line and last line included', () => {
    const text = 'pswpin 1024\noom_kill_x 9\nnr_zone_write_pending -2\npgmajfault 5';
    assert.deepEqual(
      [...parseVmstat(text, ['pgmajfault', 'oom_kill', 'pswpin', 'nr_zone_write_pending'])],
      [
        ['pgmajfault', 5],
        ['pswpin', 1024],
        ['nr_zone_write_pending', -2],
      ],
    );
  });
});

describe('parseFileNr', () => {
  test('allocated, unused and max, tab-separated', () => {
    assert.deepEqual(parseFileNr('1331\t0\t2466112\n'), {
      allocated: 1331,
      unused: 0,
      max: 2466112,
    });
  });
  test('fs.file-max of 2^63-1 (the default on 64-bit since 5.x) stays a number', () => {
    assert.equal(parseFileNr('992\t0\t9223372036854775807\n').max, 9223372036854775807);
  });
  test('a short line is an error', () => {
    assert.throws(() => parseFileNr('1331\t0\n'), { code: 'LOOKOUT_PROCFS_PARSE' });
  });
});

describe('parseConntrackEntries', () => {
  const header =
    'entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n';
  test('"entries" of the first CPU line, in hexadecimal', () => {
    const row = (entries: string) =>
      `${entries}  00000000 00000007 ${'00000000 '.repeat(13)}00000000\n`;
    assert.equal(parseConntrackEntries(header + row('000001a4') + row('000001a4')), 420);
  });
  test('the column is found by its name in the header, not by position', () => {
    assert.equal(parseConntrackEntries('found entries\n00000009 0000000a\n'), 10);
  });
  test('no entries column, or no CPU line, is an error', () => {
    assert.throws(() => parseConntrackEntries('found new\n1 2\n'), {
      code: 'LOOKOUT_PROCFS_PARSE',
    });
    assert.throws(() => parseConntrackEntries(header), ProcfsParseError);
  });
});

describe('parseSysctlInteger', () => {
  test('one integer, newline trimmed', () => {
    assert.equal(parseSysctlInteger('262144\n', 'nf_conntrack_max'), 262144);
  });
  test('anything else is an error naming the sysctl', () => {
    assert.throws(() => parseSysctlInteger('', 'nf_conntrack_max'), {
      code: 'LOOKOUT_PROCFS_PARSE',
      message: /nf_conntrack_max/,
    });
  });
});

describe('parseMounts', () => {
  test('octal escapes in device and mount point: space, tab, newline, backslash', () => {
    const [m] = parseMounts(
      '/dev/sdb1 /mnt/my\\040disk\\011tab\\012nl\\134bs ext4 rw,relatime 0 0\n',
    );
    assert.equal(m?.mountpoint, '/mnt/my disk\ttab\nnl\\bs');
    assert.equal(m?.device, '/dev/sdb1');
    assert.equal(m?.fstype, 'ext4');
    assert.equal(m?.readonly, false);
  });
  test('read-only from the options; "ro" only as a whole option', () => {
    const ms = parseMounts(
      'tmpfs /a tmpfs ro,nosuid,size=4k 0 0\n' + 'x /b ext4 rw,errors=remount-ro 0 0\n\n',
    );
    assert.deepEqual(
      ms.map((m) => [m.mountpoint, m.readonly]),
      [
        ['/a', true],
        ['/b', false],
      ],
    );
    assert.deepEqual(ms[0]?.options, ['ro', 'nosuid', 'size=4k']);
  });
  test('a line with too few fields is an error', () => {
    assert.throws(() => parseMounts('tmpfs /a\n'), { code: 'LOOKOUT_PROCFS_PARSE' });
  });
  test('unescapeMountField leaves text without escapes alone', () => {
    assert.equal(unescapeMountField('/plain/path'), '/plain/path');
    assert.equal(unescapeMountField('\\040lead'), ' lead');
  });
});

describe('parsePidStat', () => {
  const tail = '18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0';
  const line = (comm: string, state = 'S', rss = 512) =>
    `1234 (${comm}) ${state} 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 12345 123456789 ${rss} ${tail}\n`;

  test('fields after the command name', () => {
    assert.deepEqual(parsePidStat(line('nginx')), {
      pid: 1234,
      comm: 'nginx',
      state: 'S',
      ppid: 1,
      utime: 2.5,
      stime: 0.5,
      numThreads: 3,
      startTime: 123.45,
      vsizeBytes: 123456789,
      rssPages: 512,
    });
  });
  test('a command name with spaces and parentheses ends at the last ")"', () => {
    const p = parsePidStat(line('my (weird) proc'));
    assert.equal(p.comm, 'my (weird) proc');
    assert.equal(p.state, 'S');
    assert.equal(p.rssPages, 512);
  });
  test('a command name that is just ") R 9 (" does not shift the fields', () => {
    const p = parsePidStat(line(') R 9 (', 'Z', 0));
    assert.equal(p.comm, ') R 9 (');
    assert.equal(p.state, 'Z');
    assert.equal(p.ppid, 1);
  });
  test('an empty command name, and one of 15 bytes', () => {
    assert.equal(parsePidStat(line('')).comm, '');
    assert.equal(parsePidStat(line('prometheus-node')).comm, 'prometheus-node');
  });
  test('scanPidStat reads the same state, rss, CPU time, start time and command name off the bytes', () => {
    const out = newPidStatScan();
    for (const [comm, state, rss] of [
      ['nginx', 'S', 512],
      ['my (weird) proc', 'R', 7],
      [') R 9 (', 'Z', 0],
      ['', 'I', 0],
      ['prometheus-node', 'D', 123456789],
    ] as const) {
      // A reused buffer holds an older, longer line past the new one's end.
      const buf = new Uint8Array(4096).fill(0x37);
      const bytes = Buffer.from(line(comm, state, rss));
      buf.set(bytes);
      const p = parsePidStat(line(comm, state, rss));
      scanPidStat(buf, bytes.length, out);
      assert.equal(Buffer.from(buf.subarray(out.commStart, out.commEnd)).toString(), p.comm);
      assert.equal(String.fromCharCode(out.state), p.state);
      assert.equal(out.rssPages, p.rssPages);
      assert.equal(out.cpuTicks, Math.round((p.utime + p.stime) * 100));
      assert.equal(out.startTicks, Math.round(p.startTime * 100));
    }
    // Each field from its own column: utime 250 + stime 50 ticks, started at tick 12345.
    assert.equal(out.cpuTicks, 300);
    assert.equal(out.startTicks, 12345);
  });
  test('scanPidStat: a truncated line is an error, also with bytes past its end', () => {
    const buf = new Uint8Array(4096).fill(0x20);
    for (const text of [
      '1234 (x) S 1 2',
      '1234 no comm',
      '',
      '1234 (x) S 1 2 3 4 5 6 7 8 9 10 11 12',
    ]) {
      const bytes = Buffer.from(text);
      buf.set(bytes);
      assert.throws(() => scanPidStat(buf, bytes.length, newPidStatScan()), {
        code: 'LOOKOUT_PROCFS_PARSE',
      });
    }
  });
  test('a truncated line is an error', () => {
    assert.throws(() => parsePidStat('1234 (x) S 1 2'), { code: 'LOOKOUT_PROCFS_PARSE' });
    assert.throws(() => parsePidStat('1234 no comm'), ProcfsParseError);
    assert.throws(() => parsePidStat(''), ProcfsParseError);
  });
});

describe('processStateName', () => {
  test('letters of proc(5) to names; unknown letters to "other"', () => {
    assert.deepEqual(
      ['R', 'S', 'D', 'Z', 'T', 't', 'X', 'x', 'I', 'P', 'W', 'K', '?'].map(processStateName),
      [
        'running',
        'sleeping',
        'disk_sleep',
        'zombie',
        'stopped',
        'tracing_stop',
        'dead',
        'dead',
        'idle',
        'parked',
        'waking',
        'wakekill',
        'other',
      ],
    );
  });
});

describe('parseOsRelease', () => {
  test('quoted, single-quoted, unquoted values; comments; escapes', () => {
    const m = parseOsRelease(`# comment
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME='Debian'
ID=debian
QUOTED="say \\"hi\\" \\$HOME"
`);
    assert.equal(m.get('PRETTY_NAME'), 'Debian GNU/Linux 12 (bookworm)');
    assert.equal(m.get('NAME'), 'Debian');
    assert.equal(m.get('ID'), 'debian');
    assert.equal(m.get('QUOTED'), 'say "hi" $HOME');
    assert.equal(osPrettyName(m), 'Debian GNU/Linux 12 (bookworm)');
  });
  test('falls back to NAME, then to "Linux" as os-release(5) says', () => {
    assert.equal(osPrettyName(parseOsRelease('NAME=Alpine\n')), 'Alpine');
    assert.equal(osPrettyName(parseOsRelease('')), 'Linux');
  });
});

describe('parseAuxvPageSize', () => {
  function auxv(pairs: [number, number][], wordBytes: 4 | 8, le: boolean): Buffer {
    const buf = Buffer.alloc(pairs.length * 2 * wordBytes);
    pairs.flat().forEach((v, i) => {
      const at = i * wordBytes;
      if (wordBytes === 8)
        le ? buf.writeBigUInt64LE(BigInt(v), at) : buf.writeBigUInt64BE(BigInt(v), at);
      else le ? buf.writeUInt32LE(v, at) : buf.writeUInt32BE(v, at);
    });
    return buf;
  }
  test('finds AT_PAGESZ (6) in 64-bit little-endian and 32-bit big-endian vectors', () => {
    const pairs: [number, number][] = [
      [33, 0x7ffd0000],
      [16, 0xbfebfbff],
      [6, 16384],
      [17, 100],
      [0, 0],
    ];
    assert.equal(parseAuxvPageSize(auxv(pairs, 8, true), 8, true), 16384);
    assert.equal(parseAuxvPageSize(auxv(pairs, 4, false), 4, false), 16384);
  });
  test('stops at AT_NULL and returns undefined when absent', () => {
    assert.equal(
      parseAuxvPageSize(
        auxv(
          [
            [0, 0],
            [6, 4096],
          ],
          8,
          true,
        ),
        8,
        true,
      ),
      undefined,
    );
    assert.equal(parseAuxvPageSize(Buffer.alloc(0), 8, true), undefined);
  });
});
