//! OIDC sign-in: discovery, authorization code with PKCE, state and nonce kept in the
//! server-side session, ID-token verification, re-discovery when the provider rotates keys.

use anyhow::Context;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse, reqwest,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use tower_sessions::Session;

use crate::config::{Config, OidcConfig};
use crate::web::security::constant_time_eq;

type DiscoveredClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Session key of a sign-in in progress.
const PENDING: &str = "oidc_pending";

/// A discovered provider and the HTTP client that talks to it.
pub struct OidcClient {
    client: RwLock<DiscoveredClient>,
    http: reqwest::Client,
    settings: OidcConfig,
    redirect: RedirectUrl,
}

/// What a sign-in in progress keeps server-side, to check the callback against.
#[derive(Serialize, Deserialize)]
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
}

/// The identity a successful sign-in proves.
#[derive(Debug, Clone)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub email: String,
    /// What the provider says about the email (`email_verified`); `None` when it does not say.
    pub email_verified: Option<bool>,
    pub name: String,
}

impl Identity {
    /// Whether the provider vouched for the email, so it may name an admin: only an explicit
    /// `email_verified: true` (with self-service registration anyone could claim someone
    /// else's address), or no claim at all when the operator said this provider's addresses
    /// are its own (`OIDC_ASSUME_EMAIL_VERIFIED`).
    pub fn email_verified(&self, assume_when_absent: bool) -> bool {
        !self.email.is_empty() && self.email_verified.unwrap_or(assume_when_absent)
    }
}

/// Why a callback was refused. Shown to the person as a clear page; no session is created.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error(
        "This sign-in link is not the one we started (it may have been used already or tampered with). Please sign in again."
    )]
    StateMismatch,
    /// The provider's own words (its `error_description`) are logged, never shown: anyone can
    /// put any sentence there in a link to the callback.
    #[error("The identity provider refused to complete the sign-in. Please sign in again.")]
    Provider(String),
    #[error("The identity provider's answer could not be verified ({0}). Please sign in again.")]
    Verification(String),
}

impl OidcClient {
    /// Discovers the provider from its issuer URL.
    pub async fn discover(config: &Config, settings: &OidcConfig) -> anyhow::Result<OidcClient> {
        let http = reqwest::ClientBuilder::new()
            // No redirects: the openidconnect docs require this against SSRF.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        let public = config
            .public_url
            .as_ref()
            .context("OIDC needs PUBLIC_URL")?;
        let redirect = RedirectUrl::new(format!(
            "{}/auth/callback",
            public.as_str().trim_end_matches('/')
        ))?;
        let client = Self::build_client(&http, settings, &redirect).await?;
        Ok(OidcClient {
            client: RwLock::new(client),
            http,
            settings: settings.clone(),
            redirect,
        })
    }

    async fn build_client(
        http: &reqwest::Client,
        settings: &OidcConfig,
        redirect: &RedirectUrl,
    ) -> anyhow::Result<DiscoveredClient> {
        let issuer = IssuerUrl::new(
            settings
                .issuer_url
                .as_str()
                .trim_end_matches('/')
                .to_string(),
        )?;
        let metadata = CoreProviderMetadata::discover_async(issuer, http)
            .await
            .with_context(|| format!("OIDC discovery from {} failed", settings.issuer_url))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(settings.client_id.clone()),
            settings
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose_secret().to_string())),
        )
        .set_redirect_uri(redirect.clone()))
    }

    /// Starts a sign-in: remembers state, nonce and PKCE verifier in the session and returns
    /// the provider URL to send the browser to.
    pub async fn start(&self, session: &Session, next: String) -> anyhow::Result<String> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let client = self.client.read().await;
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        let pending = Pending {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
            next,
        };
        session.insert(PENDING, pending).await?;
        Ok(url.to_string())
    }

    /// Completes a sign-in. The pending state is consumed first, so a replayed callback
    /// finds nothing to match.
    pub async fn callback(
        &self,
        session: &Session,
        code: &str,
        state: &str,
    ) -> Result<Result<(Identity, String), CallbackError>, anyhow::Error> {
        let pending: Option<Pending> = session.remove(PENDING).await?;
        let Some(pending) = pending else {
            return Ok(Err(CallbackError::StateMismatch));
        };
        if !constant_time_eq(pending.state.as_bytes(), state.as_bytes()) {
            return Ok(Err(CallbackError::StateMismatch));
        }
        let token = {
            let client = self.client.read().await;
            let request = match client.exchange_code(AuthorizationCode::new(code.to_string())) {
                Ok(r) => r,
                Err(e) => return Ok(Err(CallbackError::Provider(e.to_string()))),
            };
            match request
                .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
                .request_async(&self.http)
                .await
            {
                Ok(t) => t,
                Err(e) => return Ok(Err(CallbackError::Provider(describe_token_error(&e)))),
            }
        };
        let Some(id_token) = token.id_token() else {
            return Ok(Err(CallbackError::Verification("no ID token".into())));
        };
        let nonce = Nonce::new(pending.nonce.clone());
        let verified = {
            let client = self.client.read().await;
            id_token
                .claims(&client.id_token_verifier(), &nonce)
                .cloned()
        };
        let claims = match verified {
            Ok(c) => c,
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(_)) => {
                // The provider may have rotated its keys: discover again, verify once more.
                match Self::build_client(&self.http, &self.settings, &self.redirect).await {
                    Ok(fresh) => {
                        let mut client = self.client.write().await;
                        *client = fresh;
                        match id_token.claims(&client.id_token_verifier(), &nonce) {
                            Ok(c) => c.clone(),
                            Err(e) => return Ok(Err(CallbackError::Verification(e.to_string()))),
                        }
                    }
                    Err(e) => return Ok(Err(CallbackError::Verification(e.to_string()))),
                }
            }
            Err(e) => return Ok(Err(CallbackError::Verification(e.to_string()))),
        };
        let email = claims
            .email()
            .map(|e| e.as_str().to_string())
            .unwrap_or_default();
        let name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_string())
            .or_else(|| claims.preferred_username().map(|u| u.as_str().to_string()))
            .unwrap_or_else(|| {
                if email.is_empty() {
                    claims.subject().as_str().to_string()
                } else {
                    email.clone()
                }
            });
        Ok(Ok((
            Identity {
                issuer: claims.issuer().as_str().to_string(),
                subject: claims.subject().as_str().to_string(),
                email,
                email_verified: claims.email_verified(),
                name,
            },
            pending.next,
        )))
    }

    /// The provider's issuer URL, for display.
    pub fn issuer(&self) -> &str {
        self.settings.issuer_url.as_str()
    }

    /// The provider's name for the sign-in button: as configured, else the issuer's host.
    pub fn provider_name(&self) -> String {
        self.settings.provider_name.clone().unwrap_or_else(|| {
            self.settings
                .issuer_url
                .host_str()
                .unwrap_or("your identity provider")
                .to_string()
        })
    }

    /// Whether `/login` goes straight to the provider.
    pub fn straight_to_provider(&self) -> bool {
        self.settings.straight_to_provider
    }

    /// Whether an ID token without `email_verified` counts as verified.
    pub fn assume_email_verified(&self) -> bool {
        self.settings.assume_email_verified
    }
}

/// What to tell the person when the provider sent them back with `?error=CODE` (RFC 6749
/// §4.1.2.1, OIDC Core §3.1.2.6): our own sentence for the code, never the
/// `error_description` the link carries (it is logged).
pub fn provider_error_message(code: &str) -> &'static str {
    match code {
        "access_denied" => {
            "The sign-in was cancelled or not allowed at the identity provider. If you should \
             have access, ask whoever runs it to give you access to Tracecoder."
        }
        "login_required"
        | "interaction_required"
        | "consent_required"
        | "account_selection_required" => {
            "The identity provider needs you to sign in there first. Please sign in again."
        }
        "temporarily_unavailable" | "server_error" => {
            "The identity provider could not complete the sign-in just now. Please try again in \
             a moment."
        }
        _ => "The identity provider refused the sign-in. Please sign in again.",
    }
}

fn describe_token_error<E: std::error::Error>(e: &E) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
