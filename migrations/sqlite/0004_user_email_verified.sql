-- Whether the identity provider vouched for the user's email (`email_verified: true` in the
-- ID token) at the last sign-in: 1 or 0. Only a verified email can make an admin, through
-- ADMIN_EMAILS or `tracecoder admin grant`. Development sign-in users (loopback only) count
-- as verified; OIDC users are unverified until their next sign-in records what the provider
-- says.
ALTER TABLE users ADD COLUMN email_verified BIGINT NOT NULL DEFAULT 0;
UPDATE users SET email_verified = 1 WHERE issuer = 'dev-sign-in';
