//! Network: Neutron's network; `segmentation_id` is the Geneve VNI (the network key in flows).

use serde::{Deserialize, Serialize};

use crate::common::{default_true, Status};
use crate::error::ValidationError;
use crate::kind::Kind;
use crate::limits::{
    max_network_mtu, DEFAULT_MTU, GENEVE_MAX_HEADER_SIZE, MAX_MTU, MIN_MTU, OVERLAY_IP_HEADER_LEN,
};
use crate::resource::impl_resource;
use crate::validate::{common_text, own_id, ref_ids};

/// Largest Geneve VNI (24 bits).
pub const MAX_SEGMENTATION_ID: u32 = (1 << 24) - 1;

fn default_mtu() -> u32 {
    DEFAULT_MTU
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub project_id: String,
    #[serde(default = "default_true")]
    pub admin_state_up: bool,
    #[serde(default = "Status::active")]
    pub status: Status,
    #[serde(default)]
    pub shared: bool,
    /// Neutron's `router:external`: floating IPs and router gateways come from external networks.
    #[serde(rename = "router:external", default)]
    pub router_external: bool,
    #[serde(default = "default_mtu")]
    pub mtu: u32,
    /// Geneve VNI, 1..=16777215; absent means "the store assigns it from `unique_key`".
    #[serde(default)]
    pub segmentation_id: Option<u32>,
    /// Neutron's `provider:physical_network`: set, the network is a flat provider network on
    /// that physical network (reached on each chassis through its bridge mapping, e.g.
    /// `physnet1:br-ex`) instead of a Geneve overlay. tern uses flat networks as external
    /// networks: floating IPs and router gateways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_network: Option<String>,
    /// 0 = not yet allocated.
    #[serde(default)]
    pub unique_key: u32,
    #[serde(default = "default_true")]
    pub port_security_enabled: bool,
    /// Ids of the network's subnets.
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(default)]
    pub revision_number: u64,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            id: String::new(),
            name: String::new(),
            description: String::new(),
            project_id: String::new(),
            admin_state_up: true,
            status: Status::Active,
            shared: false,
            router_external: false,
            mtu: DEFAULT_MTU,
            segmentation_id: None,
            physical_network: None,
            unique_key: 0,
            port_security_enabled: true,
            subnets: Vec::new(),
            revision_number: 0,
            created_at: None,
            updated_at: None,
        }
    }
}

impl Network {
    /// Whether this is a flat provider network (see [`Network::physical_network`]).
    pub fn is_flat(&self) -> bool {
        self.physical_network.is_some()
    }

    /// The VNI used on the wire: `segmentation_id` if set, else the unique key (if allocated and in
    /// range).
    pub fn vni(&self) -> Option<u32> {
        self.segmentation_id
            .or_else(|| (1..=MAX_SEGMENTATION_ID).contains(&self.unique_key).then_some(self.unique_key))
    }
}

fn validate(n: &Network) -> Result<(), ValidationError> {
    let k = Kind::Network;
    own_id(k, &n.id)?;
    common_text(k, &n.name, &n.description, &n.project_id)?;
    if !(MIN_MTU..=MAX_MTU).contains(&n.mtu) {
        return Err(ValidationError::new(
            k,
            "mtu",
            n.mtu,
            format!("must be between {MIN_MTU} and {MAX_MTU}"),
        ));
    }
    if let Some(vni) = n.segmentation_id {
        if !(1..=MAX_SEGMENTATION_ID).contains(&vni) {
            return Err(ValidationError::new(
                k,
                "segmentation_id",
                vni,
                format!("Geneve VNI must be between 1 and {MAX_SEGMENTATION_ID}"),
            ));
        }
    }
    if let Some(physnet) = &n.physical_network {
        let ok = !physnet.is_empty()
            && physnet.len() <= 64
            && physnet.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !ok {
            return Err(ValidationError::new(
                k,
                "physical_network",
                physnet,
                "must be 1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
        if let Some(vni) = n.segmentation_id {
            return Err(ValidationError::new(
                k,
                "segmentation_id",
                vni,
                "a flat provider network has no segmentation id",
            ));
        }
    }
    ref_ids(k, "subnets", &n.subnets)
}

impl_resource!(Network, Network, unique_key, validate);

/// The network's MTU fits an underlay of `underlay_mtu` bytes (see [`max_network_mtu`]): Neutron's
/// "Requested MTU is too big" as a validation error on `mtu`.
pub fn check_network_mtu(n: &Network, underlay_mtu: u32) -> Result<(), ValidationError> {
    let max = max_network_mtu(underlay_mtu, n.is_flat());
    if n.mtu <= max {
        return Ok(());
    }
    let how = if n.is_flat() {
        format!("a flat network on a {underlay_mtu}-byte underlay")
    } else {
        format!(
            "a geneve network on a {underlay_mtu}-byte underlay: {underlay_mtu} - {OVERLAY_IP_HEADER_LEN} (IPv4) - {GENEVE_MAX_HEADER_SIZE} (Geneve header)"
        )
    };
    Err(ValidationError::new(
        Kind::Network,
        "mtu",
        n.mtu,
        format!("Requested MTU is too big, maximum is {max} ({how})"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    const MIN: &str = r#"{"name":"n1"}"#;
    const FULL: &str = r#"{
        "id": "net-1", "name": "n1", "description": "d", "project_id": "p1",
        "admin_state_up": false, "status": "DOWN", "shared": true, "router:external": true,
        "mtu": 9000, "segmentation_id": 16777215, "unique_key": 7, "port_security_enabled": false,
        "subnets": ["s1", "s2"], "revision_number": 3,
        "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-02T00:00:00Z"
    }"#;

    #[test]
    fn minimal_parses_with_defaults() {
        let n: Network = valid(MIN);
        assert_eq!(n, Network { name: "n1".into(), ..Network::default() });
        assert_eq!(n.mtu, 1442);
        assert!(n.admin_state_up && n.port_security_enabled);
        assert_eq!(n.status, Status::Active);
        valid::<Network>("{}");
    }

    #[test]
    fn full_round_trips() {
        round_trip::<Network>(FULL);
    }

    #[test]
    fn unknown_field_rejected() {
        rejects_unknown_field::<Network>(MIN);
    }

    #[test]
    fn rules() {
        invalid::<Network>(MIN, r#"{"mtu": 67}"#, "mtu", "67");
        invalid::<Network>(MIN, r#"{"mtu": 9001}"#, "mtu", "9001");
        valid::<Network>(r#"{"mtu": 68}"#);
        invalid::<Network>(MIN, r#"{"segmentation_id": 0}"#, "segmentation_id", "0");
        invalid::<Network>(MIN, r#"{"segmentation_id": 16777216}"#, "segmentation_id", "16777216");
        invalid::<Network>(MIN, r#"{"id": "a/b"}"#, "id", "a/b");
        invalid::<Network>(MIN, r#"{"subnets": ["s1", "s1"]}"#, "subnets[1]", "s1");
        invalid::<Network>(MIN, r#"{"subnets": [""]}"#, "subnets[0]", "");
        let long = "x".repeat(256);
        invalid::<Network>(MIN, &format!(r#"{{"name": "{long}"}}"#), "name", &long);
        valid::<Network>(&format!(
            r#"{{"name": "{}", "description": "{}"}}"#,
            "x".repeat(255),
            "y".repeat(255)
        ));
        invalid::<Network>(MIN, r#"{"name": "a\u0000b"}"#, "name", "a\\0b");
        invalid::<Network>(MIN, r#"{"description": "\u0000"}"#, "description", "\\0");
        invalid::<Network>(MIN, r#"{"project_id": "p\u0000"}"#, "project_id", "p\\0");
        unparsable::<Network>(MIN, r#"{"status": "SLEEPY"}"#, "SLEEPY");
        unparsable::<Network>(MIN, r#"{"mtu": "big"}"#, "line 1");
        valid::<Network>(r#"{"physical_network": "physnet1"}"#);
        invalid::<Network>(MIN, r#"{"physical_network": ""}"#, "physical_network", "");
        invalid::<Network>(MIN, r#"{"physical_network": "a b"}"#, "physical_network", "a b");
        invalid::<Network>(
            MIN,
            r#"{"physical_network": "physnet1", "segmentation_id": 5}"#,
            "segmentation_id",
            "5",
        );
    }

    #[test]
    fn mtu_against_the_underlay() {
        let geneve = Network { mtu: 1442, ..Network::default() };
        check_network_mtu(&geneve, 1500).unwrap();
        let e = check_network_mtu(&Network { mtu: 1443, ..geneve.clone() }, 1500).unwrap_err();
        assert_eq!((e.field.as_str(), e.value.as_str()), ("mtu", "1443"));
        assert!(e.reason.contains("maximum is 1442"), "{e}");
        check_network_mtu(&Network { mtu: 8942, ..geneve.clone() }, 9000).unwrap();
        let flat = Network { mtu: 1500, physical_network: Some("physnet1".into()), ..Network::default() };
        check_network_mtu(&flat, 1500).unwrap();
        let e = check_network_mtu(&Network { mtu: 1501, ..flat }, 1500).unwrap_err();
        assert!(e.reason.contains("maximum is 1500") && e.reason.contains("flat"), "{e}");
    }

    #[test]
    fn vni() {
        let mut n = Network::default();
        assert_eq!(n.vni(), None);
        n.unique_key = 5;
        assert_eq!(n.vni(), Some(5));
        n.segmentation_id = Some(100);
        assert_eq!(n.vni(), Some(100));
    }
}
