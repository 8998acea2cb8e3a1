// Proofs made by panva's `dpop` package, one per algorithm, for jotguard to verify.
// `dpop` names Ed25519 proofs by RFC 9864's "Ed25519"; "EdDSA" ones (the name most
// deployments know) are made with panva's `jose`, the library under oidc-provider.
// stdin: {"algs": [...], "htm", "htu", "accessToken"|null}
// stdout: [{"alg", "proof", "jkt"}], jkt by the library's own thumbprint function.
import { createHash, randomUUID } from 'node:crypto';
import { calculateThumbprint, generateKeyPair, generateProof } from 'dpop';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair as joseKeyPair } from 'jose';

async function joseEdDSAProof(input) {
  const { publicKey, privateKey } = await joseKeyPair('EdDSA', { crv: 'Ed25519' });
  const jwk = await exportJWK(publicKey);
  const claims = { jti: randomUUID(), htm: input.htm, htu: input.htu };
  if (input.accessToken) {
    claims.ath = createHash('sha256').update(input.accessToken).digest('base64url');
  }
  const proof = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'EdDSA', typ: 'dpop+jwt', jwk })
    .setIssuedAt()
    .sign(privateKey);
  return { alg: 'EdDSA', proof, jkt: await calculateJwkThumbprint(jwk) };
}

const input = JSON.parse(await new Response(process.stdin).text());
const out = [];
for (const alg of input.algs) {
  if (alg === 'EdDSA') {
    out.push(await joseEdDSAProof(input));
    continue;
  }
  const keypair = await generateKeyPair(alg);
  const proof = await generateProof(
    keypair, input.htu, input.htm, undefined, input.accessToken ?? undefined,
  );
  out.push({ alg, proof, jkt: await calculateThumbprint(keypair.publicKey) });
}
process.stdout.write(JSON.stringify(out));
