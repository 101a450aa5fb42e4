// Special-purpose IP ranges (IANA IPv4 and IPv6 Special-Purpose Address Registries, plus multicast, reserved
// and transition prefixes whose embedded IPv4 could reach a private host). A media URL must not reach these
// unless the server allows private media.
import { isIP } from 'node:net';

const V4_SPECIAL: Array<[string, number]> = [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.31.196.0', 24], ['192.52.193.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16],
  ['192.175.48.0', 24], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
];

// Whole prefixes refused (value, prefix bits) over the 128-bit address as a bigint.
const V6_SPECIAL: Array<[string, number]> = [
  ['::', 96], // unspecified, loopback and the deprecated IPv4-compatible ::a.b.c.d
  ['64:ff9b::', 96], ['64:ff9b:1::', 48], // NAT64: reaches any IPv4, private ones included
  ['100::', 64], // discard-only
  ['2001::', 23], // IETF protocol assignments (Teredo 2001::/32, ORCHIDv2, benchmarking...)
  ['2001:db8::', 32], ['2002::', 16], // documentation; 6to4 (embeds an IPv4)
  ['3fff::', 20], ['5f00::', 16], // documentation; SRv6 SIDs
  ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8], // unique-local, link-local, site-local, multicast
];

function v4ToInt(a: string): number {
  return a.split('.').reduce((n, p) => n * 256 + Number(p), 0);
}

function v4Special(a: string): boolean {
  const x = v4ToInt(a);
  return V4_SPECIAL.some(([base, bits]) => Math.floor(x / 2 ** (32 - bits)) === Math.floor(v4ToInt(base) / 2 ** (32 - bits)));
}

/** 128-bit value of an IPv6 address (zone id dropped, embedded dotted IPv4 accepted). */
export function v6ToBigInt(addr: string): bigint {
  let a = addr.toLowerCase().replace(/%.*$/, '');
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (dotted) {
    const n = v4ToInt(dotted[1]!);
    a = a.slice(0, -dotted[1]!.length) + `${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head, tail] = a.includes('::') ? a.split('::') as [string, string] : [a, null];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === null ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((n, g) => (n << 16n) | BigInt(parseInt(g || '0', 16)), 0n);
}

const MAPPED_PREFIXES = [0xffffn << 32n, 0xffffn << 48n]; // ::ffff:a.b.c.d and ::ffff:0:a.b.c.d (SIIT)

/** True for every address a media fetch must not reach: loopback, private, link-local, CGNAT, documentation, multicast, reserved, transition prefixes. */
export function isPrivateAddress(addr: string): boolean {
  const host = addr.replace(/^\[|\]$/g, '');
  const kind = isIP(host.replace(/%.*$/, ''));
  if (kind === 4) return v4Special(host);
  if (kind !== 6) return true; // not an address at all: refuse rather than guess
  const x = v6ToBigInt(host);
  for (const p of MAPPED_PREFIXES) {
    if (x >> 32n === p >> 32n) {
      const v4 = Number(x & 0xffffffffn);
      return v4Special(`${v4 >>> 24}.${(v4 >>> 16) & 255}.${(v4 >>> 8) & 255}.${v4 & 255}`);
    }
  }
  return V6_SPECIAL.some(([base, bits]) => x >> BigInt(128 - bits) === v6ToBigInt(base) >> BigInt(128 - bits));
}
