//! OFPT_GROUP_MOD (OpenFlow 1.3/1.4 layout): select/all/indirect/fast-failover groups.

use crate::action::{read_actions, write_actions, Action};
use crate::codec::{Reader, Writer};
use crate::error::DecodeError;
use crate::flow::OFPG_ANY;
use crate::port::OFPP_ANY;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupModCommand {
    Add,
    Modify,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupType {
    All,
    Select,
    Indirect,
    FastFailover,
}

/// "All groups" for a delete.
pub const OFPG_ALL: u32 = 0xffff_fffc;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bucket {
    pub weight: u16,
    /// OFPP_ANY when unused.
    pub watch_port: u32,
    /// OFPG_ANY when unused.
    pub watch_group: u32,
    pub actions: Vec<Action>,
}

impl Bucket {
    pub fn new(actions: Vec<Action>) -> Bucket {
        Bucket { weight: 0, watch_port: OFPP_ANY, watch_group: OFPG_ANY, actions }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupMod {
    pub command: GroupModCommand,
    pub group_type: GroupType,
    pub group_id: u32,
    pub buckets: Vec<Bucket>,
}

impl GroupMod {
    pub(crate) fn write(&self, w: &mut Writer, version: u8) {
        w.u16(match self.command {
            GroupModCommand::Add => 0,
            GroupModCommand::Modify => 1,
            GroupModCommand::Delete => 2,
        });
        w.u8(match self.group_type {
            GroupType::All => 0,
            GroupType::Select => 1,
            GroupType::Indirect => 2,
            GroupType::FastFailover => 3,
        });
        w.u8(0);
        w.u32(self.group_id);
        for b in &self.buckets {
            let len = w.len16(0);
            w.u16(b.weight);
            w.u32(b.watch_port);
            w.u32(b.watch_group);
            w.zeros(4);
            write_actions(w, &b.actions, version);
            w.patch16(len);
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>, version: u8) -> Result<GroupMod, DecodeError> {
        let command = match r.u16()? {
            0 => GroupModCommand::Add,
            1 => GroupModCommand::Modify,
            2 => GroupModCommand::Delete,
            v => return Err(DecodeError::BadValue { what: "group_mod command", value: u64::from(v) }),
        };
        let group_type = match r.u8()? {
            0 => GroupType::All,
            1 => GroupType::Select,
            2 => GroupType::Indirect,
            3 => GroupType::FastFailover,
            v => return Err(DecodeError::BadValue { what: "group type", value: u64::from(v) }),
        };
        r.skip(1)?;
        let group_id = r.u32()?;
        let mut buckets = Vec::new();
        while !r.is_empty() {
            let len = usize::from(r.u16()?);
            if len < 16 {
                return Err(DecodeError::BadLength { what: "bucket", length: len });
            }
            let mut b = r.sub(len - 2, "bucket")?;
            let weight = b.u16()?;
            let watch_port = b.u32()?;
            let watch_group = b.u32()?;
            b.skip(4)?;
            let actions = read_actions(&mut b, version, 0)?;
            buckets.push(Bucket { weight, watch_port, watch_group, actions });
        }
        Ok(GroupMod { command, group_type, group_id, buckets })
    }
}
