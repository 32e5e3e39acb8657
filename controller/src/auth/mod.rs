//! Who may call the admin API: every call needs an identity, a bearer token (stored hashed)
//! or an operator's client certificate, and each verb needs a role (viewer < operator <
//! admin). A missing identity is `UNAUTHENTICATED`; a missing role `PERMISSION_DENIED`,
//! naming the role needed.
//!
//! Tokens are looked up in memory; a token not found there is looked up once more in the
//! database (a token made by `h264-controller token create` while the controller runs), so
//! the cache never needs a restart.

pub mod tokens;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use h264_trust::{Identity, Role};
use tonic::{Request, Status};

use crate::listen::peer_of;
use crate::store::{Store, TokenRecord};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Token name or certificate identity (as the audit trail shows it).
    pub who: String,
    /// What it may do.
    pub role: Role,
    /// `token` or `certificate`.
    pub method: &'static str,
}

/// The authenticator of the admin API.
#[derive(Debug)]
pub struct Auth {
    store: Arc<Store>,
    tokens: RwLock<HashMap<String, TokenRecord>>,
}

impl Auth {
    /// An authenticator over the tokens in `store`.
    pub fn load(store: Arc<Store>) -> Result<Self, crate::store::StoreError> {
        let tokens = store.tokens()?.into_iter().collect();
        Ok(Self {
            store,
            tokens: RwLock::new(tokens),
        })
    }

    /// Adds a token made through the API to the cache.
    pub fn remember(&self, hash: String, record: TokenRecord) {
        self.tokens
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(hash, record);
    }

    fn token(&self, hash: &str) -> Option<TokenRecord> {
        if let Some(t) = self
            .tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
        {
            return Some(t.clone());
        }
        // Made while we run (h264-controller token create)? Reload once.
        let all: HashMap<String, TokenRecord> = self.store.tokens().ok()?.into_iter().collect();
        let found = all.get(hash).cloned();
        *self.tokens.write().unwrap_or_else(|p| p.into_inner()) = all;
        found
    }

    /// Who sent `request`: its bearer token, else its operator certificate.
    pub fn authenticate<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        if let Some(value) = request.metadata().get("authorization") {
            let text = value
                .to_str()
                .map_err(|_| Status::unauthenticated("the authorization header is not text"))?;
            let token = text.strip_prefix("Bearer ").ok_or_else(|| {
                Status::unauthenticated("the authorization header is not `Bearer TOKEN`")
            })?;
            let record = self.token(&tokens::hash(token.trim())).ok_or_else(|| {
                Status::unauthenticated(
                    "the token is not known to this controller (mistyped, or made for another \
                     controller): use the one in STATE_DIR/admin.token or make one with \
                     `h264-controller token create`",
                )
            })?;
            let role = Role::parse(&record.role).map_err(Status::internal)?;
            return Ok(Caller {
                who: format!("token:{}", record.name),
                role,
                method: "token",
            });
        }
        let peer = peer_of(request);
        match peer.identity {
            Some(Identity::Operator { name, role }) => Ok(Caller {
                who: format!("cert:{name}"),
                role,
                method: "certificate",
            }),
            Some(Identity::Agent(id)) => Err(Status::unauthenticated(format!(
                "the certificate names agent `{id}`, which cannot call the admin API: use an \
                 operator certificate or a token"
            ))),
            None => Err(Status::unauthenticated(
                "no credential: give fleetctl --token-file FILE (the controller writes \
                 STATE_DIR/admin.token at its first start), --token TOKEN, or an operator \
                 certificate (--cert/--key)",
            )),
        }
    }

    /// [`Auth::authenticate`], then checks that the caller has `need` to `verb`.
    pub fn authorize<T>(
        &self,
        request: &Request<T>,
        verb: &str,
        need: Role,
    ) -> Result<Caller, Status> {
        let caller = self.authenticate(request)?;
        if caller.role < need {
            return Err(Status::permission_denied(format!(
                "`{verb}` needs the {need} role; {} has the {} role",
                caller.who, caller.role
            )));
        }
        Ok(caller)
    }
}
