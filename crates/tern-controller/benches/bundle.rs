//! Installing 20,000 flows through one atomic bundle: tern's OpenFlow connection against OVS's own
//! `ovs-ofctl --bundle add-flows` of the same flows, into the same kind of bridge (netdev br-int in
//! its own namespace), interleaved round by round so both see the same machine noise.
//!
//! `cargo bench -p tern-controller --bench bundle` (as root). `TERN_BENCH_FLOWS` and
//! `TERN_BENCH_ROUNDS` change the size and the number of rounds; `TERN_BENCH_JSON=1` adds a JSON line.

#[path = "../tests/common/flowset.rs"]
mod flowset;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};
use tern_controller::ofconn::OfConn;
use tern_openflow::FlowMod;
use tern_ovsdb::testing::OvsSandbox;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that excludes us means "don't run".
    if std::env::args().skip(1).any(|a| !a.starts_with('-') && !"bundle".contains(a.as_str())) {
        return;
    }
    let n = env_num("TERN_BENCH_FLOWS", 20_000);
    let rounds = env_num("TERN_BENCH_ROUNDS", 7);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    let sbx = OvsSandbox::start_isolated().expect("start OVS (as root)");
    let target = sbx.add_flow_test_bridge().unwrap();
    let flows = flowset::flows(n as u32);
    let file = sbx.dir().join("flows.txt");
    let mut f = std::fs::File::create(&file).unwrap();
    for flow in &flows {
        writeln!(f, "{flow}").unwrap();
    }
    drop(f);
    let mut expected: Vec<String> = flows.iter().map(|f| f.to_string()).collect();
    expected.sort();

    let conn = rt.block_on(async {
        let (events, _rx) = tokio::sync::mpsc::unbounded_channel();
        OfConn::connect(&target.parse().unwrap(), events).await.expect("connect")
    });
    let clear = || {
        sbx.ofctl(&["-O", "OpenFlow14", "del-flows", &target]).unwrap();
    };
    let check = |who: &str| {
        let text = sbx.ofctl(&["-O", "OpenFlow13", "dump-flows", &target, "--no-stats"]).unwrap();
        let mut got: Vec<String> = text.lines().map(|l| l.trim().to_owned()).collect();
        got.sort();
        assert!(got == expected, "{who}: OVS does not hold exactly the {n} flows");
    };

    eprintln!("installing {n} flows per round, {rounds} rounds, tern and ovs-ofctl interleaved");
    println!("| round | tern bundle | ovs-ofctl --bundle add-flows |");
    println!("| ---: | ---: | ---: |");
    let (mut tern, mut ofctl) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        clear();
        let mods: Vec<FlowMod> = flows.iter().cloned().map(FlowMod::add).collect();
        let start = Instant::now();
        rt.block_on(conn.install_bundle(mods)).expect("tern bundle");
        let t = start.elapsed();
        if round == 1 {
            check("tern");
        }
        clear();
        let start = Instant::now();
        let out = Command::new("ovs-ofctl")
            .env("OVS_RUNDIR", sbx.dir())
            .args(["-O", "OpenFlow14", "--bundle", "add-flows", &target])
            .arg(&file)
            .output()
            .unwrap();
        let o = start.elapsed();
        assert!(out.status.success(), "ovs-ofctl: {}", String::from_utf8_lossy(&out.stderr));
        if round == 1 {
            check("ovs-ofctl");
        }
        println!("| {round} | {:.1} ms | {:.1} ms |", t.as_secs_f64() * 1e3, o.as_secs_f64() * 1e3);
        tern.push(t);
        ofctl.push(o);
    }
    let (t, o) = (median(tern), median(ofctl));
    println!(
        "| median | {:.1} ms ({:.0} flows/s) | {:.1} ms ({:.0} flows/s) |",
        t.as_secs_f64() * 1e3,
        n as f64 / t.as_secs_f64(),
        o.as_secs_f64() * 1e3,
        n as f64 / o.as_secs_f64()
    );
    println!("tern / ovs-ofctl time ratio (median): {:.2}", t.as_secs_f64() / o.as_secs_f64());
    if std::env::var("TERN_BENCH_JSON").is_ok_and(|v| v == "1") {
        println!(
            "{{\"flows\":{n},\"rounds\":{rounds},\"tern_median_ms\":{:.3},\"ovs_ofctl_median_ms\":{:.3},\"ratio\":{:.4}}}",
            t.as_secs_f64() * 1e3,
            o.as_secs_f64() * 1e3,
            t.as_secs_f64() / o.as_secs_f64()
        );
    }
}
