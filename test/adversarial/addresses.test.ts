// The special-purpose address list (IANA v4/v6 registries and transition prefixes), and the sandboxed local
// media answer that does not reveal which files exist.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isPrivateAddress } from '../../src/io/addresses.js';
import { loadMediaBytes, MediaError } from '../../src/io/media.js';

describe('isPrivateAddress, IANA special-purpose lists', () => {
  it.each([
    ['198.18.0.1', true], ['198.19.255.255', true], ['198.20.0.1', false], ['192.0.0.8', true], ['192.0.2.1', true],
    ['203.0.113.9', true], ['198.51.100.1', true], ['240.0.0.1', true], ['255.255.255.255', true], ['224.0.0.1', true],
    ['192.88.99.1', true], ['1.1.1.1', false], ['93.184.216.34', false],
    ['::7f00:1', true], ['::127.0.0.1', true], ['::ffff:0:7f00:1', true], ['::ffff:0:127.0.0.1', true], ['::ffff:0:808:808', false],
    ['64:ff9b::8.8.8.8', true], ['64:ff9b::a00:1', true], ['64:ff9b:1::1', true], ['2002:7f00:1::', true], ['2002::1', true],
    ['fec0::1', true], ['feff::1', true], ['2001:db8::1', true], ['2001::1', true], ['100::1', true], ['ff02::1', true],
    ['fe80::1%eth0', true], ['[::1]', true], ['2606:4700::1111', false], ['2a00:1450:4001::200e', false], ['not-an-ip', true],
  ])('%s → %s', (a, want) => expect(isPrivateAddress(a)).toBe(want));

  it('refuses [::127.0.0.1] in a URL (normalized by the URL parser to ::7f00:1)', async () => {
    const e = await loadMediaBytes('http://[::127.0.0.1]:1/x.png', 'image', { allowPrivateNetwork: false }).catch((x: MediaError) => x);
    expect((e as MediaError).code).toBe('private_address');
  });
});

describe('sandboxed local media', () => {
  it('gives the same answer for an existing and a missing file outside the folder', async () => {
    const root = mkdtempSync(join(tmpdir(), 'phi4mm-sandbox-'));
    const outsideDir = mkdtempSync(join(tmpdir(), 'phi4mm-outside-'));
    writeFileSync(join(outsideDir, 'exists.png'), 'x');
    const msg = async (p: string) => {
      const e = await loadMediaBytes(p, 'image', { allowLocalFiles: root }).catch((x: MediaError) => x) as MediaError;
      return `${e.code}: ${e.message.replace(p, 'PATH')}`;
    };
    const a = await msg(join(outsideDir, 'exists.png'));
    expect(a).toMatch(/^forbidden_path/);
    expect(await msg(join(outsideDir, 'missing.png'))).toBe(a);
    expect(await msg('/etc/passwd')).toBe(a);
    expect(await msg('../../../../etc/hostname')).toBe(a);
  });
});
