// A resource server written by others: Express with Auth0's express-oauth2-jwt-bearer,
// DPoP enabled (its default mode: Bearer tokens as before, bound tokens need the DPoP
// scheme and a proof), verifying the tokens of one issuer from its JWKS. On 127.0.0.1 and
// a port the OS picks.
// argv[2]: a JSON file {"issuer", "audience", "jwksUri", "tokenSigningAlg"}.
// stdout: one line {"url": "http://127.0.0.1:PORT"}; runs until stdin closes.
// GET /test-auth: 200 "This is a protected route."; refusals are the library's status and
// WWW-Authenticate, with {"error", "error_description"}.
import { readFileSync } from 'node:fs';
import express from 'express';
import { UnauthorizedError, auth } from 'express-oauth2-jwt-bearer';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const app = express();
app.get(
  '/test-auth',
  auth({
    issuer: config.issuer,
    audience: config.audience,
    jwksUri: config.jwksUri,
    tokenSigningAlg: config.tokenSigningAlg,
    dpop: { enabled: true },
  }),
  (req, res) => res.send('This is a protected route.'),
);
// The library's refusals as it makes them: its status and WWW-Authenticate, in a JSON body.
app.use((err, req, res, next) => (err instanceof UnauthorizedError
  ? res.status(err.status).set(err.headers).json({ error: err.code, error_description: err.message })
  : next(err)));
const server = app.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${server.address().port}` })}\n`);
});
process.stdin.on('end', () => { server.close(); process.exit(0); });
process.stdin.resume();
