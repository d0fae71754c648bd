// A real OIDC provider for Tracecoder's sign-in tests: oauth2-mock-server on 127.0.0.1, on a
// free port, plus a few control endpoints under /_test/ so a test can shape the next ID token.
//
// Usage: node provider.mjs
// The first line on stdout is the issuer URL (e.g. http://127.0.0.1:41234). The process exits
// when its stdin closes, so it never outlives the test that started it.
//
// Control endpoints (POST, JSON body, answer 204):
//   /_test/identity        {"sub", "email", "name"}  who signs in from now on (replaces the
//                          [, "email_verified"]      previous identity: a claim left out is
//                                                    not in the ID token)
//   /_test/next-id-token   {"claims": {...}}         claims overridden in the next ID token only
//                          {"foreign": true}         next ID token minted by another issuer
//                                                    (its own URL and signing key)
//                          {"forged": true}          next ID token names this issuer but is
//                                                    signed with a key it never published
//   /_test/rotate-keys     {}                        replace the signing key (same kid, new key)

import { generateKeyPairSync, sign } from 'node:crypto';
import http from 'node:http';
import { OAuth2Issuer, OAuth2Service } from 'oauth2-mock-server';

const KID = 'tracecoder-test-key';

const issuer = new OAuth2Issuer();
await issuer.keys.generate('RS256', { kid: KID });
const service = new OAuth2Service(issuer);

// A second, unrelated provider whose tokens the app must never accept: its own issuer URL
// and its own RSA key, under the same key id so only the key material tells them apart.
const foreignKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
let foreignIssuerUrl = null;

let identity = { sub: 'johndoe', email: 'john.doe@example.com', name: 'John Doe' };
let nextIdToken = null;
let lastIdPayload = null;

// The access token carries `scope`; the ID token does not.
const isIdToken = (payload) => !('scope' in payload);

const b64url = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

// Signs synchronously (the server's response hook does not wait for promises).
function signForeign(payload) {
  const input = `${b64url({ alg: 'RS256', typ: 'JWT', kid: KID })}.${b64url(payload)}`;
  return `${input}.${sign('RSA-SHA256', Buffer.from(input), foreignKey).toString('base64url')}`;
}

service.on('beforeTokenSigning', (token) => {
  if (!isIdToken(token.payload)) return;
  Object.assign(token.payload, identity);
  if (nextIdToken?.claims) {
    Object.assign(token.payload, nextIdToken.claims);
  }
  lastIdPayload = { ...token.payload };
});

service.on('beforeResponse', (response) => {
  const change = nextIdToken;
  nextIdToken = null;
  if (response.statusCode !== 200 || lastIdPayload === null) return;
  if (change?.foreign) {
    // The same claims (nonce, audience, subject), issued and signed by the other provider.
    response.body.id_token = signForeign({ ...lastIdPayload, iss: foreignIssuerUrl });
  } else if (change?.forged) {
    // Claims naming this provider, signed with a key it never published.
    response.body.id_token = signForeign(lastIdPayload);
  }
});

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

async function control(req, res) {
  const body = await readJson(req);
  switch (req.url) {
    case '/_test/identity':
      identity = { ...body };
      break;
    case '/_test/next-id-token':
      nextIdToken = { claims: body.claims ?? null, foreign: Boolean(body.foreign), forged: Boolean(body.forged) };
      break;
    case '/_test/rotate-keys':
      // Same kid, new key material: tokens signed from now on fail against cached keys.
      await issuer.keys.generate('RS256', { kid: KID });
      break;
    default:
      res.writeHead(404).end();
      return;
  }
  res.writeHead(204).end();
}

const handler = service.requestHandler;
const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url.startsWith('/_test/')) {
    control(req, res).catch((err) => {
      res.writeHead(400, { 'content-type': 'text/plain' }).end(String(err));
    });
    return;
  }
  handler(req, res);
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  issuer.url = `http://127.0.0.1:${port}`;
  foreignIssuerUrl = `http://127.0.0.1:${port}/another-issuer`;
  process.stdout.write(`${issuer.url}\n`);
});

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
