// Verifies proofs made by jotguard with panva's `jose`, as oidc-provider does:
// jwtVerify against the embedded JWK with typ dpop+jwt, then htm, htu, ath, thumbprint.
// stdin: [{"proof", "htm", "htu", "accessToken"|null}]  stdout: [{"ok", "error"?, "jkt"?}]
import { createHash } from 'node:crypto';
import { EmbeddedJWK, calculateJwkThumbprint, jwtVerify } from 'jose';

const algorithms = ['ES256', 'EdDSA', 'Ed25519', 'PS256', 'RS256'];
const cases = JSON.parse(await new Response(process.stdin).text());
const out = [];
for (const c of cases) {
  try {
    const { payload, protectedHeader } = await jwtVerify(c.proof, EmbeddedJWK, {
      typ: 'dpop+jwt', algorithms, maxTokenAge: '60s', clockTolerance: 30,
    });
    if (payload.htm !== c.htm) throw new Error('htm mismatch');
    if (payload.htu !== c.htu) throw new Error('htu mismatch');
    if (typeof payload.jti !== 'string' || !payload.jti) throw new Error('no jti');
    if (c.accessToken) {
      const ath = createHash('sha256').update(c.accessToken).digest('base64url');
      if (payload.ath !== ath) throw new Error('ath mismatch');
    }
    out.push({ ok: true, alg: protectedHeader.alg, jkt: await calculateJwkThumbprint(protectedHeader.jwk) });
  } catch (err) {
    out.push({ ok: false, error: String(err.message || err) });
  }
}
process.stdout.write(JSON.stringify(out));
