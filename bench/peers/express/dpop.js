// Express with Auth0's express-oauth2-jwt-bearer, DPoP required (RFC 9449): every request
// to /test-auth carries `Authorization: DPoP <token>` and a proof, which the library
// checks (signature by the embedded key, typ, htm, htu, iat, ath, the token's cnf.jkt)
// after verifying the RS256 token against the issuer's JWKS.
//
// The library keeps no record of spent proofs (RFC 9449 §11.1 leaves that to the server),
// so this adds the jti cache a user adds, the same shape as jotguard's in-memory one: two
// generations of one replay window each, keyed by the key's thumbprint and the jti.
//
//   DPOP_PROOF_LIFETIME, DPOP_LEEWAY  seconds, as jotguard's: a proof is accepted while
//                                     now - lifetime - leeway <= iat <= now + leeway
'use strict';
const express = require('express');
const { auth, UnauthorizedError } = require('express-oauth2-jwt-bearer');

const { PORT, ISSUER, AUDIENCE, JWKS_URI } = process.env;
const lifetime = Number(process.env.DPOP_PROOF_LIFETIME || 60);
const leeway = Number(process.env.DPOP_LEEWAY || 30);

function replayCache(windowSeconds) {
  let generation = -Infinity;
  let current = new Set();
  let previous = new Set();
  return (req, res, next) => {
    const now = Math.floor(Date.now() / 1000 / windowSeconds);
    if (now > generation) {
      previous = now === generation + 1 ? current : new Set();
      current = new Set();
      generation = now;
    }
    // The proof's signature was checked by auth(): its payload is read, not verified again.
    const { jti } = JSON.parse(Buffer.from(req.headers.dpop.split('.')[1], 'base64url'));
    const key = `${req.auth.payload.cnf.jkt} ${jti}`;
    if (current.has(key) || previous.has(key)) {
      // As the library refuses any other bad proof: 400, invalid_dpop_proof.
      res.set('WWW-Authenticate', 'DPoP error="invalid_dpop_proof", error_description="replayed"');
      res.status(400).json({ error: 'invalid_dpop_proof', error_description: 'replayed' });
      return;
    }
    current.add(key);
    next();
  };
}

const checkDPoP = auth({
  issuer: ISSUER,
  audience: AUDIENCE,
  jwksUri: JWKS_URI,
  tokenSigningAlg: 'RS256',
  dpop: { enabled: true, required: true, iatOffset: lifetime + leeway, iatLeeway: leeway },
});

const app = express();
app.get('/test', (req, res) => res.send('This is an unprotected route.'));
app.get('/test-auth', checkDPoP, replayCache(lifetime + 2 * leeway), (req, res) =>
  res.send('This is a protected route.'),
);
app.use((err, req, res, next) => {
  if (err instanceof UnauthorizedError) {
    // The library's status (400 for invalid_request and invalid_dpop_proof) and challenge.
    res.set(err.headers);
    res.status(err.status).json({ error: err.code, error_description: err.message });
    return;
  }
  next(err);
});
app.listen(Number(PORT), '127.0.0.1');
