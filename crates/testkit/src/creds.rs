//! NATS decentralized auth for tests: an operator, an account with JetStream and a system
//! account, signed here with `nkeys` (what `nsc` would make), as a `nats-server` config, and
//! users of the account as `.creds` files.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::KeyPair;
use serde_json::{Value, json};
use tempfile::TempDir;

/// An operator trusting one account, with its files in a temporary directory.
pub struct OperatorMode {
    dir: TempDir,
    account: KeyPair,
    config: PathBuf,
}

impl OperatorMode {
    /// A fresh operator, account and system account, and the server config trusting them.
    pub fn new() -> OperatorMode {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let operator = KeyPair::new_operator();
        let account = KeyPair::new_account();
        let config = operator_config(dir.path(), &operator, &account);
        OperatorMode {
            dir,
            account,
            config,
        }
    }

    /// The `nats-server -c` config file.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// A new user of the account, as a `.creds` file.
    pub fn user_creds(&self, name: &str) -> PathBuf {
        creds_file(self.dir.path(), name, &self.account)
    }

    /// A user of an account the server does not know, as a `.creds` file.
    pub fn stranger_creds(&self, name: &str) -> PathBuf {
        creds_file(self.dir.path(), name, &KeyPair::new_account())
    }
}

impl Default for OperatorMode {
    fn default() -> Self {
        OperatorMode::new()
    }
}

/// A NATS JWT: `claims` (with `iss`, `sub` and `iat` added) signed by `issuer`.
fn jwt(issuer: &KeyPair, subject: &str, name: &str, nats: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"typ": "JWT", "alg": "ed25519-nkey"}).to_string());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let claims = json!({
        "jti": format!("{name}-{now}"),
        "iat": now,
        "iss": issuer.public_key(),
        "sub": subject,
        "name": name,
        "nats": nats,
    });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{claims}");
    let signature = issuer.sign(signed.as_bytes()).expect("sign");
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// A user of `account` as a `.creds` file in `dir`.
fn creds_file(dir: &Path, name: &str, account: &KeyPair) -> PathBuf {
    let user = KeyPair::new_user();
    let user_jwt = jwt(
        account,
        &user.public_key(),
        name,
        &json!({"type": "user", "version": 2, "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1}),
    );
    let seed = user.seed().expect("a seed");
    let text = format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    );
    let path = dir.join(format!("{name}.creds"));
    std::fs::write(&path, text).expect("write the creds file");
    path
}

/// Operator `operator` trusting `account` (with JetStream) and a system account of its own
/// (JetStream needs one), as a server config in `dir`.
fn operator_config(dir: &Path, operator: &KeyPair, account: &KeyPair) -> PathBuf {
    let operator_jwt = jwt(
        operator,
        &operator.public_key(),
        "test-operator",
        &json!({"type": "operator", "version": 2}),
    );
    let limits = json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
        "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
    });
    let account_jwt = jwt(
        operator,
        &account.public_key(),
        "wspubsub",
        &json!({"type": "account", "version": 2, "limits": limits}),
    );
    let system = KeyPair::new_account();
    let system_jwt = jwt(
        operator,
        &system.public_key(),
        "SYS",
        &json!({"type": "account", "version": 2}),
    );
    let config = format!(
        "operator: {operator_jwt}\nsystem_account: {system}\nresolver: MEMORY\n\
         resolver_preload: {{\n  {account}: {account_jwt}\n  {system}: {system_jwt}\n}}\n",
        system = system.public_key(),
        account = account.public_key(),
    );
    let path = dir.join("operator.conf");
    std::fs::write(&path, config).expect("write the server config");
    path
}
