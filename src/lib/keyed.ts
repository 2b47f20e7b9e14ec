import { createHmac, randomBytes } from 'node:crypto';

/**
 * An HMAC-SHA256 under a random key made now, for values compared or looked up without
 * their time telling anything: digests are of equal length whatever was sent, and no one
 * without the key can steer a value's digest towards a stored one. Parts are joined by a
 * NUL, so ('ab', 'c') and ('a', 'bc') differ.
 */
export function keyedDigest(): (...parts: string[]) => Buffer {
  const key = randomBytes(32);
  return (...parts) => {
    const hmac = createHmac('sha256', key);
    for (let i = 0; i < parts.length; i++) {
      if (i > 0) hmac.update('\0');
      hmac.update(parts[i]!);
    }
    return hmac.digest();
  };
}
