//! Client ids: how the server names a client in its logs and events.

/// The server-side id of a client: `<name>-<uuid v4>`, as the Go server forms it.
///
/// A client without a name gets `-<uuid>`, exactly like the Go server, so that ids from both
/// servers look alike in logs.
pub(crate) fn client_id(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_is_name_dash_uuid() {
        let id = client_id("sensor");
        let (name, uuid) = id.split_at("sensor-".len());
        assert_eq!(name, "sensor-");
        let parsed = uuid::Uuid::parse_str(uuid).expect("uuid part");
        assert_eq!(parsed.get_version_num(), 4);
        assert_ne!(client_id("sensor"), id, "ids must be unique");
    }
}
