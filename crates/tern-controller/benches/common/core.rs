//! One chassis of a benchmark as the controller really runs it: a [`Core`] on its own copy of
//! the NB, its VIFs plugged, a switch that accepts every bundle at once. [`CoreChassis::handle`]
//! feeds it NB events and returns when the core has decided: a bundle (its flow changes), or no
//! computation at all (the events could not touch its flows). No IO: the time is the core's.

use std::time::{Duration, Instant};

use std::sync::Arc;
use tern_controller::cache::NbCache;

use tern_controller::core::{BundleOutcome, Core, Identity, Input, NbChange, Output};
use tern_controller::view::Local;
use tern_pipeline::FlowSet;
use tern_store::nb::NbEvent;

pub struct CoreChassis {
    pub core: Core,
    pub local: Local,
    epoch: u64,
    /// Flows the switch holds.
    pub flows: usize,
}

/// What one input cost a chassis.
#[derive(Clone, Copy, Debug, Default)]
pub struct Handled {
    /// From the input to the core's decision (bundle out, or nothing to do).
    pub took: Duration,
    /// Flow changes in the bundle (0: none sent).
    pub changes: usize,
    /// Whether the core computed (false: the events were out of its scope).
    pub computed: bool,
}

impl CoreChassis {
    /// A chassis on `nb`, its VIFs as `local` says, settled: its first bundle installed.
    pub fn new(local: Local, tunnel_ip: std::net::Ipv4Addr, nb: impl Into<Arc<NbCache>>) -> CoreChassis {
        let me = Identity { chassis: local.chassis.clone(), tunnel_ip, dual_delivery: local.dual_delivery };
        let mut c = CoreChassis { core: Core::new(me, nb), local, epoch: 1, flows: 0 };
        let now = Instant::now();
        c.core.handle(
            Input::Ovsdb {
                vifs: c.local.vifs.clone(),
                tunnel_ofport: c.local.tunnel_ofport,
                patch_ports: c.local.patch_ports.clone(),
                synced: true,
            },
            now,
        );
        c.core.handle(Input::SwitchConnected { epoch: c.epoch, flows: FlowSet::new() }, now);
        c.settle();
        c
    }

    /// Plugs or unplugs VIFs (what OVSDB would report).
    pub fn set_vifs(&mut self, vifs: std::collections::BTreeMap<String, u32>) -> Handled {
        self.local.vifs = vifs;
        let input = Input::Ovsdb {
            vifs: self.local.vifs.clone(),
            tunnel_ofport: self.local.tunnel_ofport,
            patch_ports: self.local.patch_ports.clone(),
            synced: true,
        };
        self.input(input)
    }

    /// NB events, as the watch delivers them (one batch).
    pub fn handle(&mut self, events: Vec<NbEvent>) -> Handled {
        self.input(Input::Nb(events))
    }

    /// A new copy of the NB shared with other chassis, and the changes that made it.
    pub fn handle_shared(&mut self, nb: Arc<NbCache>, changes: Arc<[NbChange]>) -> Handled {
        self.input(Input::SharedNb { nb, changes })
    }

    fn input(&mut self, input: Input) -> Handled {
        let t = Instant::now();
        let before = self.core.computations();
        self.core.handle(input, t);
        let mut h = Handled::default();
        // The core decides within `handle`: its bundle (or its report of nothing to do) is the
        // first thing out.
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Bundle { mods, .. } => {
                    h = Handled { took: t.elapsed(), changes: mods.len(), computed: true };
                    self.install();
                    break;
                }
                Output::Reconciled(r) => {
                    // Computed with nothing to change, or nothing computed (out of scope).
                    let computed = self.core.computations() > before;
                    h = Handled { took: t.elapsed(), changes: 0, computed };
                    self.flows = r.flows;
                    break;
                }
                _ => {}
            }
        }
        if h.took.is_zero() {
            h.took = t.elapsed();
        }
        self.settle();
        h
    }

    fn install(&mut self) {
        self.core.handle(
            Input::BundleDone { epoch: self.epoch, outcome: BundleOutcome::Installed },
            Instant::now(),
        );
    }

    /// Carries out what is left (acknowledges bundles, drops packet-outs and status writes)
    /// until the core is idle.
    pub fn settle(&mut self) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Bundle { .. } => self.install(),
                Output::Write(_) => self.core.handle(Input::Written(Vec::new()), Instant::now()),
                Output::ReadSwitch => {
                    self.core.handle(Input::SwitchRead(Some(FlowSet::new())), Instant::now())
                }
                Output::Reconciled(r) => self.flows = r.flows,
                Output::PacketOuts { .. } | Output::PortStatus(_) => {}
            }
        }
    }
}
