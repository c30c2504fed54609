#!/usr/bin/env node
/**
 * Summarise a V8 CPU profile (from `bench --cpu-prof DIR`): self time by function and by
 * category, so where a server's CPU goes can be read and quoted.
 *
 *   node dev/build/dev/bench/profile.js FILE.cpuprofile [--top N]
 *   node dev/build/dev/bench/profile.js FILE.cpuprofile --callers FUNCTION [--depth N]
 */

import { readFileSync } from 'node:fs';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** A coarse category for a frame: where its time is spent. */
export function category(f: CallFrame): string {
  const name = f.functionName;
  const url = f.url;
  if (name === '(garbage collector)') return 'gc';
  if (name === '(idle)' || name === '(program)' || name === '(root)') return name.slice(1, -1);
  if (url.includes('/protocol/')) return 'sesame protocol (JS)';
  if (url.includes('/net/') && !url.startsWith('node:')) return 'sesame net (JS)';
  if (url.includes('/bench/') || url.includes('/services/')) return 'bench/services (JS)';
  if (url.startsWith('node:internal/crypto') || url === 'node:crypto') return 'node crypto (JS + native)';
  if (url.startsWith('node:internal/tls') || url.startsWith('node:_tls') || url === 'node:tls')
    return 'node tls';
  if (url.startsWith('node:internal/stream_base_commons') || url.startsWith('node:net'))
    return 'node net / stream I/O';
  if (url.startsWith('node:internal/streams')) return 'node streams';
  if (url.startsWith('node:internal/timers') || url.startsWith('node:timers')) return 'node timers';
  if (url.startsWith('node:')) return 'node (other)';
  if (url === '') return `native: ${name || '(anonymous)'}`;
  return 'other JS';
}

/** Self time per node id, in microseconds. */
function selfTimes(p: CpuProfile): Map<number, number> {
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i] as number;
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  return self;
}

/** Self time of the functions named `name`, by their callers' chains (`depth` frames up). */
export function callers(p: CpuProfile, name: string, depth = 4, top = 15): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = selfTimes(p);
  const chains = new Map<string, number>();
  let total = 0;
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (n === undefined || n.callFrame.functionName !== name) continue;
    total += us;
    const chain: string[] = [];
    let cur = parent.get(id);
    while (cur !== undefined && chain.length < depth) {
      const f = byId.get(cur)?.callFrame;
      if (f !== undefined)
        chain.push(`${f.functionName || '(anonymous)'}@${f.url.replace(/^.*\//, '')}:${f.lineNumber + 1}`);
      cur = parent.get(cur);
    }
    const key = chain.join(' < ');
    chains.set(key, (chains.get(key) ?? 0) + us);
  }
  const lines = [`${name}: ${(total / 1000).toFixed(1)} ms self time, by caller chain`];
  for (const [k, us] of [...chains].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`  ${(us / 1000).toFixed(1).padStart(8)} ms  ${k}`);
  }
  return lines.join('\n');
}

export function summarise(p: CpuProfile, top = 30): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = selfTimes(p);
  let total = 0;
  let idle = 0;
  const byFunction = new Map<string, number>();
  const byCategory = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (n === undefined) continue;
    total += us;
    const f = n.callFrame;
    if (f.functionName === '(idle)') {
      idle += us;
      continue;
    }
    // Paths from the product's folder (src/ in the dev build, or dist/) or from the dev build's
    // own dev/, so a function reads as net/session.js or bench/server-process.js.
    const file = f.url.replace(/^.*\/(src|dist|build\/dev)\//, '').replace(/^file:\/\//, '');
    const key = `${f.functionName || '(anonymous)'}  ${file}${file === '' ? '' : `:${f.lineNumber + 1}`}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    const c = category(f);
    byCategory.set(c, (byCategory.get(c) ?? 0) + us);
  }
  const busy = total - idle;
  const pct = (us: number) => `${((100 * us) / Math.max(1, busy)).toFixed(1).padStart(5)}%`;
  const lines = [
    `busy ${(busy / 1000).toFixed(0)} ms of ${(total / 1000).toFixed(0)} ms sampled (idle excluded from the shares)`,
    '',
    'self time by category',
  ];
  for (const [c, us] of [...byCategory].sort((a, b) => b[1] - a[1])) lines.push(`  ${pct(us)}  ${c}`);
  lines.push('', `self time by function (top ${top})`);
  for (const [k, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top))
    lines.push(`  ${pct(us)}  ${k}`);
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (file === undefined) {
    process.stderr.write('usage: node dev/build/dev/bench/profile.js FILE.cpuprofile [--top N]\n');
    process.exitCode = 2;
  } else {
    const arg = (flag: string) => {
      const i = process.argv.indexOf(flag);
      return i > 0 ? process.argv[i + 1] : undefined;
    };
    const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    const name = arg('--callers');
    process.stdout.write(
      `${name === undefined ? summarise(profile, Number(arg('--top') ?? 30)) : callers(profile, name, Number(arg('--depth') ?? 4))}\n`,
    );
  }
}
