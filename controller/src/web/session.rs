//! Console logins: a token is checked once (through the admin API's own authentication), then
//! the browser holds only a random session id in an `HttpOnly`, `SameSite=Strict` cookie
//! (`Secure` over TLS). The token stays in the controller's memory, so every action the
//! session takes goes through the admin API's authorization and audit as that token, and a
//! token deleted meanwhile stops working at once.
//!
//! # Theory of operation
//! The sessions live in one `std::sync::Mutex`-guarded map, held for a few statements and
//! never across an `.await`. A session expires [`LIFETIME`] after login; at most
//! [`MAX_SESSIONS`] exist (the oldest goes first). Each has a CSRF token the pages carry in a
//! `<meta>` tag; every mutating request must send it back in the `X-CSRF-Token` header (or the
//! `csrf` form field for the logout form), compared in constant time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use h264_trust::Role;

/// The session cookie's name.
pub const COOKIE: &str = "h264_console";
/// How long a login lasts.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most.
pub const MAX_SESSIONS: usize = 1000;

/// One login.
#[derive(Debug, Clone)]
pub struct Login {
    /// The token it logged in with (memory only).
    pub token: String,
    /// Who the controller takes it for (`token:NAME`).
    pub who: String,
    /// Its role.
    pub role: Role,
    /// The CSRF token of its pages.
    pub csrf: String,
    created: Instant,
}

/// A login that exists only to carry a token to the admin API (the login check itself).
pub fn probe(token: String) -> Login {
    Login {
        token,
        who: String::new(),
        role: Role::Viewer,
        csrf: String::new(),
        created: Instant::now(),
    }
}

/// The logins.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Login>>,
}

fn random_hex() -> String {
    let a: [u8; 32] = rand::random();
    a.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal strings, compared in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Login>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes a session; returns its id (the cookie's value).
    pub fn create(&self, token: String, who: String, role: Role) -> String {
        let id = random_hex();
        let mut map = self.lock();
        map.retain(|_, l| l.created.elapsed() < LIFETIME);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, l)| l.created)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            id.clone(),
            Login {
                token,
                who,
                role,
                csrf: random_hex(),
                created: Instant::now(),
            },
        );
        id
    }

    /// The live session of `id`.
    pub fn get(&self, id: &str) -> Option<Login> {
        let mut map = self.lock();
        match map.get(id) {
            Some(l) if l.created.elapsed() < LIFETIME => Some(l.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// The session id in a `Cookie` header, if any.
pub fn cookie_value(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value of a new session.
pub fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends a session in the browser.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_cookies_and_csrf() {
        let s = Sessions::default();
        let id = s.create("t".into(), "token:v".into(), Role::Viewer);
        let login = s.get(&id).unwrap();
        assert_eq!(login.role, Role::Viewer);
        assert_eq!(login.csrf.len(), 64);
        assert!(s.get("nope").is_none());
        let header = format!("a=b; {COOKIE}={id}; c=d");
        assert_eq!(cookie_value(&header), Some(id.as_str()));
        let c = set_cookie(&id, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("Secure"));
        assert!(same(&login.csrf, &login.csrf.clone()));
        assert!(!same(&login.csrf, "x"));
        s.remove(&id);
        assert!(s.get(&id).is_none());
    }
}
