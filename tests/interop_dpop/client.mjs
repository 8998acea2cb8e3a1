// A DPoP client written with panva's `dpop` (and `jose` for "EdDSA"), doing its own HTTP
// with Node's fetch: a client_credentials token request, then GETs of a protected resource
// with the token, each request with a fresh proof by the client's one key.
//
// Nonces as RFC 9449 §8-9 has a client keep them: one for the authorization server and one
// for the resource server, each learnt from that server's DPoP-Nonce header (on a
// use_dpop_nonce refusal, which is retried once with a new proof, or on any other answer).
//
// stdin: {"alg", "tokenUrl", "tokenParams": {...form fields, client credentials included},
//         "resourceUrl", "calls": N, "extras": [...]}
// extras, each one more GET of the resource after the calls, answers recorded:
//   replay     the last resource proof again, byte for byte
//   bearer     the token with the Bearer scheme and no proof
//   thief      a proof by another key
//   elsewhere  a proof made for another URL (the resource's origin + /elsewhere)
//   otherToken a proof whose ath is another token's
// stdout: {"jkt", "token": <token response body>, "exchanges": [{"step", "status", "body",
//          "challenge", "dpopNonce", "sentNonce", "proof"}]}
import { createHash, randomUUID } from 'node:crypto';
import { calculateThumbprint, generateKeyPair, generateProof } from 'dpop';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair as joseKeyPair } from 'jose';

// `dpop` names Ed25519 proofs by RFC 9864's "Ed25519"; "EdDSA" ones (the name most
// deployments know) are made with `jose`, the library under `dpop` and oidc-provider.
async function joseEdDSAKey() {
  const { publicKey, privateKey } = await joseKeyPair('EdDSA', { crv: 'Ed25519' });
  const jwk = await exportJWK(publicKey);
  return {
    jkt: await calculateJwkThumbprint(jwk),
    prove: async (htu, htm, nonce, accessToken) => {
      const claims = { jti: randomUUID(), htm, htu };
      if (nonce) claims.nonce = nonce;
      if (accessToken) claims.ath = createHash('sha256').update(accessToken).digest('base64url');
      return new SignJWT(claims)
        .setProtectedHeader({ alg: 'EdDSA', typ: 'dpop+jwt', jwk })
        .setIssuedAt()
        .sign(privateKey);
    },
  };
}

async function clientKey(alg) {
  if (alg === 'EdDSA') return joseEdDSAKey();
  const keypair = await generateKeyPair(alg);
  return {
    jkt: await calculateThumbprint(keypair.publicKey),
    prove: (htu, htm, nonce, accessToken) => generateProof(keypair, htu, htm, nonce, accessToken),
  };
}

const input = JSON.parse(await new Response(process.stdin).text());
const key = await clientKey(input.alg);
const exchanges = [];
const nonces = { as: undefined, rs: undefined };

async function send(step, role, url, init, proof, sentNonce) {
  const response = await fetch(url, init);
  const text = await response.text();
  let body;
  try { body = JSON.parse(text); } catch { body = text; }
  const exchange = {
    step,
    status: response.status,
    body,
    challenge: response.headers.get('www-authenticate'),
    dpopNonce: response.headers.get('dpop-nonce'),
    sentNonce: sentNonce ?? null,
    proof: proof ?? null,
  };
  exchanges.push(exchange);
  if (role && exchange.dpopNonce) nonces[role] = exchange.dpopNonce;
  return exchange;
}

// One request, and once more with a new proof if the server asks for a (new) nonce.
async function withNonce(step, role, url, makeInit, askedForNonce) {
  let exchange;
  for (let attempt = 0; attempt < 2; attempt += 1) {
    const nonce = nonces[role];
    const { init, proof } = await makeInit(nonce);
    exchange = await send(step, role, url, init, proof, nonce);
    if (!askedForNonce(exchange) || nonces[role] === nonce) break;
  }
  return exchange;
}

const tokenExchange = await withNonce(
  'token',
  'as',
  input.tokenUrl,
  async (nonce) => {
    const proof = await key.prove(input.tokenUrl, 'POST', nonce);
    const init = {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: proof },
      body: new URLSearchParams(input.tokenParams).toString(),
    };
    return { init, proof };
  },
  (e) => e.status === 400 && e.body?.error === 'use_dpop_nonce',
);
const token = tokenExchange.body?.access_token;
if (typeof token !== 'string') {
  process.stdout.write(JSON.stringify({ jkt: key.jkt, token: tokenExchange.body, exchanges }));
  process.exit(0);
}

const dpopGet = (proof, scheme = 'DPoP') => ({
  method: 'GET',
  headers: proof ? { authorization: `${scheme} ${token}`, dpop: proof } : { authorization: `${scheme} ${token}` },
});
const rsAskedForNonce = (e) => e.status === 401 && /error="use_dpop_nonce"/.test(e.challenge ?? '');

let lastProof;
for (let call = 0; call < (input.calls ?? 1); call += 1) {
  const exchange = await withNonce(
    'resource',
    'rs',
    input.resourceUrl,
    async (nonce) => {
      const proof = await key.prove(input.resourceUrl, 'GET', nonce, token);
      return { init: dpopGet(proof), proof };
    },
    rsAskedForNonce,
  );
  lastProof = exchange.proof;
}

const elsewhere = new URL('/elsewhere', input.resourceUrl).href;
const extras = {
  replay: async () => ({ proof: lastProof, init: dpopGet(lastProof) }),
  bearer: async () => ({ proof: null, init: dpopGet(null, 'Bearer') }),
  thief: async () => {
    const proof = await (await clientKey('ES256')).prove(input.resourceUrl, 'GET', nonces.rs, token);
    return { proof, init: dpopGet(proof) };
  },
  elsewhere: async () => {
    const proof = await key.prove(elsewhere, 'GET', nonces.rs, token);
    return { proof, init: dpopGet(proof) };
  },
  otherToken: async () => {
    const proof = await key.prove(input.resourceUrl, 'GET', nonces.rs, `${token}x`);
    return { proof, init: dpopGet(proof) };
  },
};
for (const name of input.extras ?? []) {
  const { proof, init } = await extras[name]();
  await send(name, 'rs', input.resourceUrl, init, proof, nonces.rs);
}
process.stdout.write(JSON.stringify({ jkt: key.jkt, token: tokenExchange.body, exchanges }));
