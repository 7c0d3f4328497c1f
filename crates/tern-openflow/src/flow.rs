//! `Flow` (one flow-table entry, the same type for flow_mod bodies and flow stats),
//! flow_mod and flow-stats wire forms, and `Display` giving exactly the line
//! `ovs-ofctl -O OpenFlow13 dump-flows --no-stats` prints for the flow.

use std::fmt;

use crate::codec::{Reader, Writer};
use crate::error::DecodeError;
use crate::instruction::{read_instructions, write_instructions, Instruction, InstructionList};
use crate::matches::{Match, OFP_DEFAULT_PRIORITY};
use crate::port::OFPP_ANY;

/// `flags` bits (OFPFF_*).
pub const OFPFF_SEND_FLOW_REM: u16 = 1 << 0;
pub const OFPFF_CHECK_OVERLAP: u16 = 1 << 1;
pub const OFPFF_RESET_COUNTS: u16 = 1 << 2;
pub const OFPFF_NO_PKT_COUNTS: u16 = 1 << 3;
pub const OFPFF_NO_BYT_COUNTS: u16 = 1 << 4;

/// "All tables" in flow_mod deletes and flow-stats requests.
pub const OFPTT_ALL: u8 = 0xff;
/// "No buffered packet".
pub const OFP_NO_BUFFER: u32 = 0xffff_ffff;
/// "Any group" in flow_mod deletes and flow-stats requests.
pub const OFPG_ANY: u32 = 0xffff_ffff;

// === impl Flow ===

/// One flow-table entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Flow {
    pub table_id: u8,
    pub priority: u16,
    pub cookie: u64,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    /// OFPFF_* bits.
    pub flags: u16,
    pub match_: Match,
    pub instructions: Vec<Instruction>,
}

impl Flow {
    pub fn new(table_id: u8, priority: u16, match_: Match, instructions: Vec<Instruction>) -> Flow {
        Flow {
            table_id,
            priority,
            cookie: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            flags: 0,
            match_,
            instructions,
        }
    }

    /// The flow as the switch stores and reports it back: empty apply/write-actions
    /// instructions dropped, instructions in OVS's order, output to CONTROLLER as a
    /// `Controller` action, notes zero-padded. A flow read back from OVS (flow stats)
    /// equals the normalized form of the flow that was sent; compare desired and
    /// installed flows in this form.
    pub fn normalized(&self) -> Flow {
        self.clone().into_normalized()
    }

    /// [`Flow::normalized`], reusing the flow's own storage.
    pub fn into_normalized(mut self) -> Flow {
        self.instructions.retain(
            |i| !matches!(i, Instruction::ApplyActions(a) | Instruction::WriteActions(a) if a.is_empty()),
        );
        self.instructions.iter_mut().for_each(Instruction::normalize);
        self.instructions.sort_by_key(Instruction::print_rank);
        self
    }

    /// The match as OVS prints it, `priority=` included unless it is 32768.
    pub fn match_string(&self) -> String {
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = self.match_.format(&mut s, self.priority);
        s
    }

    /// Everything after `actions=` in OVS's text.
    pub fn actions_string(&self) -> String {
        InstructionList(&self.instructions).to_string()
    }
}

/// Flags as OVS prints them, each followed by a space.
pub(crate) fn flags_string(flags: u16) -> String {
    let mut s = String::new();
    for (bit, name) in [
        (OFPFF_SEND_FLOW_REM, "send_flow_rem "),
        (OFPFF_CHECK_OVERLAP, "check_overlap "),
        (OFPFF_RESET_COUNTS, "reset_counts "),
        (OFPFF_NO_PKT_COUNTS, "no_packet_counts "),
        (OFPFF_NO_BYT_COUNTS, "no_byte_counts "),
    ] {
        if flags & bit != 0 {
            s.push_str(name);
        }
    }
    s
}

impl fmt::Display for Flow {
    /// Exactly one line of `ovs-ofctl -O OpenFlow13 dump-flows --no-stats BRIDGE` for
    /// this flow, without the single leading space OVS puts before each line:
    /// `[cookie=0x.., ][table=N, ][idle_timeout=N, ][hard_timeout=N, ][flags ]MATCH actions=ACTIONS`
    /// where MATCH starts with `priority=N,` unless the priority is 32768, and the
    /// space before `actions=` is omitted when MATCH is empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.cookie != 0 {
            write!(f, "cookie={:#x}, ", self.cookie)?;
        }
        if self.table_id != 0 {
            write!(f, "table={}, ", self.table_id)?;
        }
        if self.idle_timeout != 0 {
            write!(f, "idle_timeout={}, ", self.idle_timeout)?;
        }
        if self.hard_timeout != 0 {
            write!(f, "hard_timeout={}, ", self.hard_timeout)?;
        }
        f.write_str(&flags_string(self.flags))?;
        let m = self.match_string();
        if !m.is_empty() {
            f.write_str(&m)?;
            f.write_str(" ")?;
        }
        write!(f, "actions={}", InstructionList(&self.instructions))
    }
}

// === impl FlowMod ===

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowModCommand {
    Add,
    Modify,
    ModifyStrict,
    Delete,
    DeleteStrict,
}

impl FlowModCommand {
    fn to_wire(self) -> u8 {
        match self {
            FlowModCommand::Add => 0,
            FlowModCommand::Modify => 1,
            FlowModCommand::ModifyStrict => 2,
            FlowModCommand::Delete => 3,
            FlowModCommand::DeleteStrict => 4,
        }
    }

    fn from_wire(v: u8) -> Result<FlowModCommand, DecodeError> {
        Ok(match v {
            0 => FlowModCommand::Add,
            1 => FlowModCommand::Modify,
            2 => FlowModCommand::ModifyStrict,
            3 => FlowModCommand::Delete,
            4 => FlowModCommand::DeleteStrict,
            _ => return Err(DecodeError::BadValue { what: "flow_mod command", value: u64::from(v) }),
        })
    }
}

/// OFPT_FLOW_MOD.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowMod {
    pub command: FlowModCommand,
    pub flow: Flow,
    pub cookie_mask: u64,
    pub buffer_id: u32,
    pub out_port: u32,
    pub out_group: u32,
}

impl FlowMod {
    fn with(command: FlowModCommand, flow: Flow) -> FlowMod {
        FlowMod {
            command,
            flow,
            cookie_mask: 0,
            buffer_id: OFP_NO_BUFFER,
            out_port: OFPP_ANY,
            out_group: OFPG_ANY,
        }
    }

    pub fn add(flow: Flow) -> FlowMod {
        FlowMod::with(FlowModCommand::Add, flow)
    }

    /// Replaces the instructions of the flow with exactly this match and priority.
    pub fn modify_strict(flow: Flow) -> FlowMod {
        FlowMod::with(FlowModCommand::ModifyStrict, flow)
    }

    /// Deletes the flow with exactly this table, priority and match.
    pub fn delete_strict(table_id: u8, priority: u16, match_: Match) -> FlowMod {
        FlowMod::with(FlowModCommand::DeleteStrict, Flow::new(table_id, priority, match_, Vec::new()))
    }

    /// Deletes every flow in `table_id` (OFPTT_ALL for all tables) that the match covers.
    pub fn delete(table_id: u8, match_: Match) -> FlowMod {
        FlowMod::with(FlowModCommand::Delete, Flow::new(table_id, OFP_DEFAULT_PRIORITY, match_, Vec::new()))
    }

    /// Deletes every flow whose cookie matches `cookie` under `mask`, in all tables.
    pub fn delete_by_cookie(cookie: u64, mask: u64) -> FlowMod {
        let mut fm = FlowMod::delete(OFPTT_ALL, Match::new());
        fm.flow.cookie = cookie;
        fm.cookie_mask = mask;
        fm
    }

    pub(crate) fn write(&self, w: &mut Writer, version: u8) {
        let f = &self.flow;
        w.u64(f.cookie);
        w.u64(self.cookie_mask);
        w.u8(f.table_id);
        w.u8(self.command.to_wire());
        w.u16(f.idle_timeout);
        w.u16(f.hard_timeout);
        w.u16(f.priority);
        w.u32(self.buffer_id);
        w.u32(self.out_port);
        w.u32(self.out_group);
        w.u16(f.flags);
        w.u16(0); // pad (1.3) / importance (1.4+)
        f.match_.write(w);
        write_instructions(w, &f.instructions, version);
    }

    pub(crate) fn read(r: &mut Reader<'_>, version: u8) -> Result<FlowMod, DecodeError> {
        let cookie = r.u64()?;
        let cookie_mask = r.u64()?;
        let table_id = r.u8()?;
        let command = FlowModCommand::from_wire(r.u8()?)?;
        let idle_timeout = r.u16()?;
        let hard_timeout = r.u16()?;
        let priority = r.u16()?;
        let buffer_id = r.u32()?;
        let out_port = r.u32()?;
        let out_group = r.u32()?;
        let flags = r.u16()?;
        r.skip(2)?;
        let match_ = Match::read(r)?;
        let instructions = read_instructions(r, version)?;
        Ok(FlowMod {
            command,
            flow: Flow {
                table_id,
                priority,
                cookie,
                idle_timeout,
                hard_timeout,
                flags,
                match_,
                instructions,
            },
            cookie_mask,
            buffer_id,
            out_port,
            out_group,
        })
    }
}

// === impl FlowStats ===

/// One entry of a flow-stats reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowStats {
    pub flow: Flow,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub packet_count: u64,
    pub byte_count: u64,
}

impl FlowStats {
    pub(crate) fn write(&self, w: &mut Writer, version: u8) {
        let f = &self.flow;
        let len = w.len16(0);
        w.u8(f.table_id);
        w.u8(0);
        w.u32(self.duration_sec);
        w.u32(self.duration_nsec);
        w.u16(f.priority);
        w.u16(f.idle_timeout);
        w.u16(f.hard_timeout);
        w.u16(f.flags);
        w.zeros(4);
        w.u64(f.cookie);
        w.u64(self.packet_count);
        w.u64(self.byte_count);
        f.match_.write(w);
        write_instructions(w, &f.instructions, version);
        w.patch16(len);
    }

    pub(crate) fn read(r: &mut Reader<'_>, version: u8) -> Result<FlowStats, DecodeError> {
        let length = usize::from(r.u16()?);
        if length < 2 {
            return Err(DecodeError::BadLength { what: "flow stats", length });
        }
        let mut b = r.sub(length - 2, "flow stats")?;
        let table_id = b.u8()?;
        b.skip(1)?;
        let duration_sec = b.u32()?;
        let duration_nsec = b.u32()?;
        let priority = b.u16()?;
        let idle_timeout = b.u16()?;
        let hard_timeout = b.u16()?;
        let flags = b.u16()?;
        b.skip(4)?;
        let cookie = b.u64()?;
        let packet_count = b.u64()?;
        let byte_count = b.u64()?;
        let match_ = Match::read(&mut b)?;
        let instructions = read_instructions(&mut b, version)?;
        Ok(FlowStats {
            flow: Flow {
                table_id,
                priority,
                cookie,
                idle_timeout,
                hard_timeout,
                flags,
                match_,
                instructions,
            },
            duration_sec,
            duration_nsec,
            packet_count,
            byte_count,
        })
    }
}

/// The body of an OFPMP_FLOW request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowStatsRequest {
    pub table_id: u8,
    pub out_port: u32,
    pub out_group: u32,
    pub cookie: u64,
    pub cookie_mask: u64,
    pub match_: Match,
}

impl FlowStatsRequest {
    /// Every flow in every table.
    pub fn all() -> FlowStatsRequest {
        FlowStatsRequest {
            table_id: OFPTT_ALL,
            out_port: OFPP_ANY,
            out_group: OFPG_ANY,
            cookie: 0,
            cookie_mask: 0,
            match_: Match::new(),
        }
    }

    /// Every flow in one table.
    pub fn table(table_id: u8) -> FlowStatsRequest {
        FlowStatsRequest { table_id, ..FlowStatsRequest::all() }
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.u8(self.table_id);
        w.zeros(3);
        w.u32(self.out_port);
        w.u32(self.out_group);
        w.zeros(4);
        w.u64(self.cookie);
        w.u64(self.cookie_mask);
        self.match_.write(w);
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<FlowStatsRequest, DecodeError> {
        let table_id = r.u8()?;
        r.skip(3)?;
        let out_port = r.u32()?;
        let out_group = r.u32()?;
        r.skip(4)?;
        Ok(FlowStatsRequest {
            table_id,
            out_port,
            out_group,
            cookie: r.u64()?,
            cookie_mask: r.u64()?,
            match_: Match::read(r)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Action;

    #[test]
    fn display_omits_defaults() {
        let f = Flow::new(0, 0, Match::new(), vec![Instruction::ApplyActions(vec![Action::resubmit(20)])]);
        assert_eq!(f.to_string(), "priority=0 actions=resubmit(,20)");
        let f = Flow::new(0, OFP_DEFAULT_PRIORITY, Match::new(), vec![]);
        assert_eq!(f.to_string(), "actions=drop");
    }

    #[test]
    fn display_header_fields() {
        let mut f = Flow::new(5, OFP_DEFAULT_PRIORITY, Match::new().in_port(3), vec![]);
        f.cookie = 0x10;
        f.idle_timeout = 10;
        f.hard_timeout = 20;
        f.flags = 0x1f;
        assert_eq!(
            f.to_string(),
            "cookie=0x10, table=5, idle_timeout=10, hard_timeout=20, send_flow_rem check_overlap \
             reset_counts no_packet_counts no_byte_counts in_port=3 actions=drop"
        );
    }
}
