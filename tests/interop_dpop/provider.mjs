// An oidc-provider authorization server issuing DPoP-bound JWT access tokens through
// client credentials and resource indicators, on 127.0.0.1 and a port the OS picks.
// argv[2]: a JSON file {"jwk": <private RS256 JWK>, "clientId", "clientSecret", "resource",
// "nonceSecret"}. stdout: one line {"issuer": "http://127.0.0.1:PORT"}; runs until stdin closes.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const input = JSON.parse(readFileSync(process.argv[2], 'utf8'));

const server = createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: input.clientId,
    client_secret: input.clientSecret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  jwks: { keys: [input.jwk] },
  enabledJWA: { dPoPSigningAlgValues: ['ES256', 'EdDSA', 'Ed25519', 'PS256', 'RS256'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    dPoP: {
      enabled: true,
      nonceSecret: Buffer.from(input.nonceSecret, 'hex'),
      // A test asks for nonce mode per request.
      requireNonce: (ctx) => ctx.get('x-test-require-nonce') === '1',
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => input.resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'read',
        audience: input.resource,
        accessTokenFormat: 'jwt',
        accessTokenTTL: 300,
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
});
server.on('request', provider.callback());
process.stdout.write(`${JSON.stringify({ issuer })}\n`);
process.stdin.on('end', () => { server.close(); process.exit(0); });
process.stdin.resume();
