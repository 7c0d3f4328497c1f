//! Flow cookies: which app wrote a flow and for which object, so a `dump-flows` reader (or a
//! `cookie=C/M` filter) can tell the apps' flows apart. Layout of the 64 bits, always 16 hex digits
//! since app ids start at 0x10: `0xAAKK_0000_OOOO_OOOO` = app (8 bits) | object kind (8 bits: 00
//! none, 01 port, 02 network) | 16 zero bits | object's unique key (32 bits).
//! `cookie=0x1201000000000015` is L2 lookup's flow for port key 0x15.

/// The app that owns a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum App {
    Classifier = 0x10,
    /// Tables whose apps are not written yet pass packets on to the next stage.
    Passthrough = 0x11,
    L2Lookup = 0x12,
    Dispatch = 0x13,
    IngressLookup = 0x14,
    Output = 0x15,
    PortSecurity = 0x16,
    ArpResponder = 0x17,
    L3Routing = 0x18,
    Dhcp = 0x19,
    SecurityGroups = 0x1a,
    FloatingIps = 0x1b,
}

/// What the low 32 bits of a cookie name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Object {
    /// A table-wide flow (defaults).
    None,
    /// A port, by unique key.
    Port(u32),
    /// A network, by unique key.
    Network(u32),
}

/// The mask selecting the app byte: `cookie=0x1200000000000000/0xff00000000000000` is every
/// L2-lookup flow.
pub const APP_MASK: u64 = 0xff00_0000_0000_0000;

impl App {
    pub const ALL: [App; 12] = [
        App::Classifier,
        App::Passthrough,
        App::L2Lookup,
        App::Dispatch,
        App::IngressLookup,
        App::Output,
        App::PortSecurity,
        App::ArpResponder,
        App::L3Routing,
        App::Dhcp,
        App::SecurityGroups,
        App::FloatingIps,
    ];

    pub fn name(self) -> &'static str {
        match self {
            App::Classifier => "classifier",
            App::Passthrough => "passthrough",
            App::L2Lookup => "l2_lookup",
            App::Dispatch => "dispatch",
            App::IngressLookup => "ingress_lookup",
            App::Output => "output",
            App::PortSecurity => "port_security",
            App::ArpResponder => "arp_responder",
            App::L3Routing => "l3_routing",
            App::Dhcp => "dhcp",
            App::SecurityGroups => "security_groups",
            App::FloatingIps => "floating_ips",
        }
    }

    /// The cookie of this app's flow for `object`.
    pub fn cookie(self, object: Object) -> u64 {
        let (kind, key) = match object {
            Object::None => (0u64, 0u32),
            Object::Port(k) => (1, k),
            Object::Network(k) => (2, k),
        };
        (self as u64) << 56 | kind << 48 | u64::from(key)
    }

    /// The app and object a cookie names, if it is one of ours.
    pub fn from_cookie(cookie: u64) -> Option<(App, Object)> {
        let app = App::ALL.into_iter().find(|a| *a as u64 == cookie >> 56)?;
        if cookie & 0x0000_ffff_0000_0000 != 0 {
            return None;
        }
        let key = cookie as u32;
        let object = match (cookie >> 48) & 0xff {
            0 if key == 0 => Object::None,
            1 => Object::Port(key),
            2 => Object::Network(key),
            _ => return None,
        };
        Some((app, object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(App::L2Lookup.cookie(Object::Port(5)), 0x1201_0000_0000_0005);
        for app in App::ALL {
            for object in [Object::None, Object::Port(u32::MAX), Object::Network(7)] {
                assert_eq!(App::from_cookie(app.cookie(object)), Some((app, object)));
            }
        }
        assert_eq!(App::from_cookie(0), None);
        assert_eq!(App::from_cookie(0x0100_0000_0000_0000), None);
        assert_eq!(App::from_cookie(0x1000_0000_0000_0001), None);
        assert_eq!(App::from_cookie(0x1001_0001_0000_0001), None);
        assert_eq!(App::from_cookie(0x1003_0000_0000_0001), None);
    }
}
