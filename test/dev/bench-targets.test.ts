// The bench's target lines say in words what they compare, and with which bound.
import { describe, expect, it } from 'vitest';
import { targetInWords } from '../../dev/bench/report.js';

describe('bench target lines', () => {
  it('name the workload, both systems, the metric and the bound in words', () => {
    expect(
      targetInWords({
        workload: 'churn-32',
        system: 'sesame-fs',
        against: 'tls-psk',
        metric: 'cpuUsPerOp',
        op: '<=',
        limit: 0.4,
      }),
    ).toBe('churn-32: Sesame FS needs at most 0.4x the server CPU µs per operation of TLS-PSK');
    expect(
      targetInWords({
        workload: 'persistent',
        system: 'sesame-fs',
        against: 'raw',
        metric: 'opsPerSec',
        op: '>=',
        limit: 0.8,
      }),
    ).toBe('persistent: Sesame FS reaches at least 0.8x the operations per second of raw net');
  });
});
