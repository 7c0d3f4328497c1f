//! Store keys (`/tern/v1/<kind>/<id>`) and id generation.

use crate::kind::Kind;

/// Every tern key starts with this.
pub const ROOT_PREFIX: &str = "/tern/v1/";

/// The store key of object `id` of `kind`: `/tern/v1/<kind name>/<id>`.
pub fn key(kind: Kind, id: &str) -> String {
    format!("{ROOT_PREFIX}{}/{id}", kind.name())
}

/// The prefix shared by every key of `kind`: `/tern/v1/<kind name>/`.
pub fn kind_prefix(kind: Kind) -> String {
    format!("{ROOT_PREFIX}{}/", kind.name())
}

/// Splits a key made by [`key`] back into kind and id. `None` for anything else (other prefix,
/// unknown kind, empty id, id containing `/`).
pub fn parse_key(key: &str) -> Option<(Kind, &str)> {
    let rest = key.strip_prefix(ROOT_PREFIX)?;
    let (kind, id) = rest.split_once('/')?;
    let kind = Kind::from_name(kind)?;
    if id.is_empty() || id.contains('/') {
        return None;
    }
    Some((kind, id))
}

/// A fresh id: a random (v4) UUID in its hyphenated lowercase form.
pub fn generate_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::validate_id;

    #[test]
    fn keys_round_trip() {
        for k in Kind::ALL {
            let key = key(k, "abc-1");
            assert!(key.starts_with(&kind_prefix(k)));
            assert_eq!(parse_key(&key), Some((k, "abc-1")));
        }
        assert_eq!(key(Kind::FloatingIp, "x"), "/tern/v1/floatingip/x");
        assert_eq!(kind_prefix(Kind::SecurityGroup), "/tern/v1/security_group/");
    }

    #[test]
    fn parse_key_rejects_others() {
        for bad in [
            "",
            "/tern/v1/",
            "/tern/v1/network",
            "/tern/v1/network/",
            "/tern/v1/networks/x",
            "/tern/v2/network/x",
            "/tern/v1/network/x/y",
            "tern/v1/network/x",
        ] {
            assert_eq!(parse_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn generated_ids_are_uuids_and_valid() {
        let a = generate_id();
        let b = generate_id();
        assert_ne!(a, b);
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 4);
        validate_id(Kind::Network, "id", &a).unwrap();
    }
}
