//! OpenFlow 1.1+ instructions and how OVS prints a flow's instruction set
//! (apply-actions first, then clear/write actions, write_metadata, goto_table).

use std::fmt;

use crate::action::{read_actions, write_actions, Action, ActionList};
use crate::codec::{Reader, Writer};
use crate::error::DecodeError;
use crate::text::Hex;

const OFPIT_GOTO_TABLE: u16 = 1;
const OFPIT_WRITE_METADATA: u16 = 2;
const OFPIT_WRITE_ACTIONS: u16 = 3;
const OFPIT_APPLY_ACTIONS: u16 = 4;
const OFPIT_CLEAR_ACTIONS: u16 = 5;
const OFPIT_METER: u16 = 6;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Instruction {
    ApplyActions(Vec<Action>),
    WriteActions(Vec<Action>),
    ClearActions,
    GotoTable(u8),
    WriteMetadata {
        value: u64,
        mask: u64,
    },
    Meter(u32),
    /// An instruction this crate does not interpret (type and bytes after the
    /// 4-byte type/length header).
    Unknown {
        inst_type: u16,
        body: Vec<u8>,
    },
}

impl Instruction {
    /// The instruction with its actions normalized (see `Action::normalized`).
    pub fn normalized(&self) -> Instruction {
        let mut i = self.clone();
        i.normalize();
        i
    }

    /// [`Instruction::normalized`] in place.
    pub fn normalize(&mut self) {
        if let Instruction::ApplyActions(a) | Instruction::WriteActions(a) = self {
            a.iter_mut().for_each(Action::normalize);
        }
    }

    /// The position OVS gives the instruction when printing a flow (and the order
    /// it reports instructions in).
    pub(crate) fn print_rank(&self) -> u8 {
        match self {
            Instruction::Meter(_) => 0,
            Instruction::ApplyActions(_) => 1,
            Instruction::ClearActions => 2,
            Instruction::WriteActions(_) => 3,
            Instruction::WriteMetadata { .. } => 4,
            Instruction::GotoTable(_) => 5,
            Instruction::Unknown { .. } => 6,
        }
    }

    pub(crate) fn write(&self, w: &mut Writer, version: u8) {
        let start = w.len();
        match self {
            Instruction::ApplyActions(actions) | Instruction::WriteActions(actions) => {
                w.u16(if matches!(self, Instruction::ApplyActions(_)) {
                    OFPIT_APPLY_ACTIONS
                } else {
                    OFPIT_WRITE_ACTIONS
                });
                let len = w.len16(2);
                w.zeros(4);
                write_actions(w, actions, version);
                w.patch16(len);
            }
            Instruction::ClearActions => {
                w.u16(OFPIT_CLEAR_ACTIONS);
                w.u16(8);
                w.zeros(4);
            }
            Instruction::GotoTable(t) => {
                w.u16(OFPIT_GOTO_TABLE);
                w.u16(8);
                w.u8(*t);
                w.zeros(3);
            }
            Instruction::WriteMetadata { value, mask } => {
                w.u16(OFPIT_WRITE_METADATA);
                w.u16(24);
                w.zeros(4);
                w.u64(*value);
                w.u64(*mask);
            }
            Instruction::Meter(id) => {
                w.u16(OFPIT_METER);
                w.u16(8);
                w.u32(*id);
            }
            Instruction::Unknown { inst_type, body } => {
                w.u16(*inst_type);
                let len = w.len16(2);
                w.bytes(body);
                w.patch16(len);
            }
        }
        debug_assert_eq!((w.len() - start) % 8, 0);
    }

    pub(crate) fn read(r: &mut Reader<'_>, version: u8) -> Result<Instruction, DecodeError> {
        let inst_type = r.u16()?;
        let len = usize::from(r.u16()?);
        if len < 8 || len & 7 != 0 {
            return Err(DecodeError::BadLength { what: "instruction", length: len });
        }
        let mut b = r.sub(len - 4, "instruction")?;
        Ok(match inst_type {
            OFPIT_GOTO_TABLE => Instruction::GotoTable(b.u8()?),
            OFPIT_WRITE_METADATA => {
                b.skip(4)?;
                Instruction::WriteMetadata { value: b.u64()?, mask: b.u64()? }
            }
            OFPIT_WRITE_ACTIONS | OFPIT_APPLY_ACTIONS => {
                b.skip(4)?;
                let actions = read_actions(&mut b, version, 0)?;
                if inst_type == OFPIT_APPLY_ACTIONS {
                    Instruction::ApplyActions(actions)
                } else {
                    Instruction::WriteActions(actions)
                }
            }
            OFPIT_CLEAR_ACTIONS => Instruction::ClearActions,
            OFPIT_METER => Instruction::Meter(b.u32()?),
            _ => Instruction::Unknown { inst_type, body: b.rest().to_vec() },
        })
    }
}

pub(crate) fn write_instructions(w: &mut Writer, instructions: &[Instruction], version: u8) {
    for i in instructions {
        i.write(w, version);
    }
}

pub(crate) fn read_instructions(r: &mut Reader<'_>, version: u8) -> Result<Vec<Instruction>, DecodeError> {
    let mut out = Vec::new();
    while !r.is_empty() {
        out.push(Instruction::read(r, version)?);
    }
    Ok(out)
}

/// A flow's instructions as the `actions=` part of `ovs-ofctl dump-flows`: in OVS's
/// order, comma-separated, `drop` when nothing would be printed.
pub struct InstructionList<'a>(pub &'a [Instruction]);

impl fmt::Display for InstructionList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sorted: Vec<&Instruction> = self.0.iter().collect();
        sorted.sort_by_key(|i| i.print_rank());
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            if first {
                first = false;
                Ok(())
            } else {
                f.write_str(",")
            }
        };
        for i in sorted {
            match i {
                Instruction::ApplyActions(actions) => {
                    for a in actions {
                        sep(f)?;
                        write!(f, "{a}")?;
                    }
                }
                // OVS does not keep an empty write_actions instruction.
                Instruction::WriteActions(actions) if actions.is_empty() => {}
                Instruction::WriteActions(actions) => {
                    sep(f)?;
                    write!(f, "write_actions({})", ActionList(actions))?;
                }
                Instruction::ClearActions => {
                    sep(f)?;
                    f.write_str("clear_actions")?;
                }
                Instruction::GotoTable(t) => {
                    sep(f)?;
                    write!(f, "goto_table:{t}")?;
                }
                Instruction::WriteMetadata { value, mask } => {
                    sep(f)?;
                    write!(f, "write_metadata:{}", Hex(u128::from(*value)))?;
                    if *mask != u64::MAX {
                        write!(f, "/{}", Hex(u128::from(*mask)))?;
                    }
                }
                Instruction::Meter(id) => {
                    sep(f)?;
                    write!(f, "meter:{id}")?;
                }
                Instruction::Unknown { inst_type, body } => {
                    sep(f)?;
                    write!(
                        f,
                        "unknown_instruction(type={inst_type:#x},body={})",
                        crate::text::DottedHex(body)
                    )?;
                }
            }
        }
        if first {
            f.write_str("drop")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_in_ovs_order() {
        let list = vec![
            Instruction::GotoTable(5),
            Instruction::WriteMetadata { value: 1, mask: 0xff },
            Instruction::WriteActions(vec![Action::output(3)]),
            Instruction::ClearActions,
            Instruction::ApplyActions(vec![Action::output(4)]),
        ];
        assert_eq!(
            InstructionList(&list).to_string(),
            "output:4,clear_actions,write_actions(output:3),write_metadata:0x1/0xff,goto_table:5"
        );
        assert_eq!(InstructionList(&[Instruction::ApplyActions(vec![])]).to_string(), "drop");
    }

    #[test]
    fn round_trip() {
        let list = vec![
            Instruction::ApplyActions(vec![Action::output(4), Action::DecTtl]),
            Instruction::ClearActions,
            Instruction::WriteActions(vec![Action::output(3)]),
            Instruction::WriteMetadata { value: 1, mask: 0xff },
            Instruction::GotoTable(5),
            Instruction::Meter(3),
            Instruction::Unknown { inst_type: 0xffff, body: vec![0, 0, 0x23, 0x20] },
        ];
        let mut w = Writer::new();
        write_instructions(&mut w, &list, crate::OFP13);
        let mut r = Reader::new(w.as_slice(), "t");
        assert_eq!(read_instructions(&mut r, crate::OFP13).unwrap(), list);
    }
}
