// The tutorial's stack: express + express-jwt + jwks-rsa, verifying RS256 tokens against
// the issuer's JWKS (keys cached by jwks-rsa, as the tutorial configures it). No denylist.
'use strict';
const express = require('express');
const { expressjwt } = require('express-jwt');
const jwksRsa = require('jwks-rsa');

const { PORT, ISSUER, AUDIENCE, JWKS_URI } = process.env;

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
});

const app = express();
app.get('/test', (req, res) => res.send('This is an unprotected route.'));
app.get('/test-auth', checkJwt, (req, res) => res.send('This is a protected route.'));
app.use((err, req, res, next) => {
  if (err.name === 'UnauthorizedError') {
    res.status(401).json({ error: err.code, error_description: err.message });
    return;
  }
  next(err);
});
app.listen(Number(PORT), '127.0.0.1');
