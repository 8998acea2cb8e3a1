// The tutorial's stack: express + express-jwt + jwks-rsa, verifying RS256 tokens against
// the issuer's JWKS (keys cached by jwks-rsa, as the tutorial configures it).
//
// Bare by default. The benchmark's like-for-like peer adds what jotguard does on every
// request, the way an Express user adds it:
//   ACCESS_LOG=1         morgan('combined'): one access line per request, on stdout
//   RATE_LIMIT=N/SECONDS express-rate-limit (memory store), per authenticated user (per
//                        IP on the unprotected route), draft-8 RateLimit headers
//   REVOKED_FILE=path    express-jwt's isRevoked: a Set of revoked (iss, jti) pairs and the
//                        subject and client cutoffs ("log out everywhere"), from a JSON file
'use strict';
const fs = require('fs');
const express = require('express');
const { expressjwt } = require('express-jwt');
const jwksRsa = require('jwks-rsa');

const { PORT, ISSUER, AUDIENCE, JWKS_URI, ACCESS_LOG, RATE_LIMIT, REVOKED_FILE } = process.env;

function revocationCheck(path) {
  const listed = JSON.parse(fs.readFileSync(path, 'utf8'));
  const jtis = new Set(listed.jtis.map((jti) => `${listed.issuer} ${jti}`));
  const subjects = new Map(Object.entries(listed.subjects));
  const clients = new Map(Object.entries(listed.clients));
  // jotguard's rule: a jti entry revokes its token; a subject or client cutoff revokes
  // every token issued at or before it.
  const cutOff = (cutoffs, key, iat) => key !== undefined && cutoffs.has(key) && iat <= cutoffs.get(key);
  return (req, token) => {
    const { iss, jti, sub, client_id: clientId, iat } = token.payload;
    return jtis.has(`${iss} ${jti}`) || cutOff(subjects, sub, iat) || cutOff(clients, clientId, iat);
  };
}

function perUserLimiter(spec) {
  const { rateLimit, ipKeyGenerator } = require('express-rate-limit');
  const [limit, seconds] = spec.split('/').map(Number);
  return rateLimit({
    windowMs: seconds * 1000,
    limit,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    keyGenerator: (req) => (req.auth ? `user:${req.auth.sub}` : ipKeyGenerator(req.ip)),
  });
}

const checkJwt = expressjwt({
  secret: jwksRsa.expressJwtSecret({
    cache: true,
    rateLimit: true,
    jwksRequestsPerMinute: 5,
    jwksUri: JWKS_URI,
  }),
  audience: AUDIENCE,
  issuer: ISSUER,
  algorithms: ['RS256'],
  ...(REVOKED_FILE ? { isRevoked: revocationCheck(REVOKED_FILE) } : {}),
});

const app = express();
if (ACCESS_LOG === '1') {
  app.use(require('morgan')('combined'));
}
const limited = RATE_LIMIT ? [perUserLimiter(RATE_LIMIT)] : [];
app.get('/test', ...limited, (req, res) => res.send('This is an unprotected route.'));
app.get('/test-auth', checkJwt, ...limited, (req, res) => res.send('This is a protected route.'));
app.use((err, req, res, next) => {
  if (err.name === 'UnauthorizedError') {
    res.status(401).json({ error: err.code, error_description: err.message });
    return;
  }
  next(err);
});
app.listen(Number(PORT), '127.0.0.1');
