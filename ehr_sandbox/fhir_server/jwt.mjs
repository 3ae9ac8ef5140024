// Bearer-token verification with Node's crypto: a compact JWS signed by a key of the configured
// JWKS (RS256/RS384 or ES256/ES384), not expired, not before its time, for this audience.
import { createPublicKey, verify } from 'node:crypto';

const ALGORITHMS = {
  RS256: { hash: 'sha256', kty: 'RSA' },
  RS384: { hash: 'sha384', kty: 'RSA' },
  ES256: { hash: 'sha256', kty: 'EC', crv: 'P-256' },
  ES384: { hash: 'sha384', kty: 'EC', crv: 'P-384' },
};
const LEEWAY_SECONDS = 5;

export class TokenError extends Error {}

function decodeSegment(segment) {
  try {
    return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    throw new TokenError('malformed token');
  }
}

/** Verifies the token and returns its claims, or throws TokenError saying why it is refused. */
export function verifyJwt(token, jwks, audience, now = Date.now() / 1000) {
  const parts = token.split('.');
  if (parts.length !== 3) {
    throw new TokenError('malformed token');
  }
  const header = decodeSegment(parts[0]);
  const claims = decodeSegment(parts[1]);
  const alg = ALGORITHMS[header.alg];
  if (!alg) {
    throw new TokenError(`unsupported alg ${String(header.alg)}`);
  }
  const candidates = (jwks.keys ?? []).filter(
    (k) =>
      k.kty === alg.kty &&
      (!alg.crv || k.crv === alg.crv) &&
      (!k.alg || k.alg === header.alg) &&
      (!k.use || k.use === 'sig') &&
      (!header.kid || k.kid === header.kid),
  );
  const data = Buffer.from(`${parts[0]}.${parts[1]}`);
  const signature = Buffer.from(parts[2], 'base64url');
  const signedBy = candidates.find((jwk) => {
    try {
      const key = createPublicKey({ key: publicMembers(jwk), format: 'jwk' });
      return verify(alg.hash, data, alg.kty === 'EC' ? { key, dsaEncoding: 'ieee-p1363' } : key, signature);
    } catch {
      return false;
    }
  });
  if (!signedBy) {
    throw new TokenError('signature not verified by any trusted key');
  }
  if (typeof claims.exp !== 'number' || claims.exp + LEEWAY_SECONDS <= now) {
    throw new TokenError('token expired');
  }
  if (typeof claims.nbf === 'number' && claims.nbf - LEEWAY_SECONDS > now) {
    throw new TokenError('token not yet valid');
  }
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!audiences.some((aud) => typeof aud === 'string' && aud.replace(/\/+$/, '') === audience)) {
    throw new TokenError('token not issued for this server (aud)');
  }
  return claims;
}

function publicMembers(jwk) {
  const { kty, n, e, crv, x, y } = jwk;
  return kty === 'RSA' ? { kty, n, e } : { kty, crv, x, y };
}
