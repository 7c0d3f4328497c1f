//! tern-model owns tern's northbound (NB) object model: the object types and their JSON form, the
//! kinds and their store keys (`/tern/v1/<kind>/<id>`), ids and MACs, and every validation rule,
//! single-object and cross-object. Pure: no IO, no clocks; nothing here panics on any input.

mod chassis;
mod check;
mod common;
mod de;
mod error;
mod floatingip;
mod ipam;
mod key;
mod kind;
pub mod limits;
mod mac;
mod migration;
mod network;
mod object;
mod port;
mod port_binding;
pub mod quota;
mod resource;
mod router;
mod security_group;
mod subnet;
#[cfg(test)]
mod testutil;
mod validate;

pub use chassis::{Chassis, TUNNEL_TYPES};
pub use check::{check_fixed_ips, check_subnet_network};
pub use common::{FixedIp, Route, Status, VnicType};
pub use error::{ModelError, ValidationError};
pub use floatingip::{FloatingIp, FloatingIpStatus};
pub use ipam::{allocate_ip, allocation_candidates, next_ip};
pub use key::{generate_id, key, kind_prefix, parse_key, ROOT_PREFIX};
pub use kind::Kind;
pub use limits::{max_network_mtu, DEFAULT_MTU, MAX_ID_LEN, MAX_MTU, MAX_TEXT_LEN, MIN_MTU};
pub use mac::{format_mac, generate_mac, parse_mac, random_mac, validate_mac, MAC_PREFIX};
pub use migration::{ActivationSource, Migration, MigrationState, MigrationTimestamps};
pub use network::{check_network_mtu, Network, MAX_SEGMENTATION_ID};
pub use object::Object;
pub use port::{AllowedAddressPair, Port, VIF_TYPE_UNBOUND};
pub use port_binding::{port_binding_id, BindingStatus, PortBinding};
pub use quota::{QuotaLimits, QuotaResource};
pub use resource::Resource;
pub use router::{ExternalGatewayInfo, Router, RouterInterface};
pub use security_group::{
    protocol_number, Direction, EtherType, SecurityGroup, SecurityGroupRule, PROTOCOLS,
};
pub use subnet::{AllocationPool, Subnet};
pub use validate::validate_id;
