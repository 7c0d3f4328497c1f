//! A real etcd cluster of several members on loopback, for tests of member loss: each member its
//! own process, free ports and data directory, bootstrapped statically. A member can be killed
//! (SIGKILL, through its `Child` handle) and started again; dropping the cluster kills them all.

use super::etcd_server::{
    exited, free_ports, health_ok, log_tail, start_retrying, unsupported_go_arch, Failure,
};
use std::fs::OpenOptions;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the members may take to elect a leader and report healthy.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running etcd cluster. Dropping it kills every member and deletes their data.
#[derive(Debug)]
pub struct EtcdCluster {
    binary: PathBuf,
    members: Vec<Member>,
    /// `--initial-cluster`: every member's name and peer URL.
    initial_cluster: String,
    // Dropped after the members are killed (see `Drop`); removes data dirs and logs.
    dir: tempfile::TempDir,
}

#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    /// `None` while killed.
    child: Option<Child>,
}

impl EtcdCluster {
    /// Starts `size` members and waits until each reports healthy (which needs a leader).
    pub fn start(size: usize) -> Result<EtcdCluster, String> {
        start_retrying(|binary| Self::start_once(binary, size))
    }

    fn start_once(binary: &Path, size: usize) -> Result<EtcdCluster, Failure> {
        let fatal = Failure::Fatal;
        let dir = tempfile::Builder::new()
            .prefix("tern-etcd-cluster-")
            .tempdir()
            .map_err(|e| fatal(format!("cannot create a directory for the etcd cluster: {e}")))?;
        let ports =
            free_ports(2 * size).map_err(|e| fatal(format!("cannot find free ports for etcd: {e}")))?;
        let members: Vec<Member> = (0..size)
            .map(|i| Member {
                name: format!("m{}", i + 1),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster { binary: binary.to_owned(), members, initial_cluster, dir };
        for i in 0..size {
            cluster.spawn(i).map_err(fatal)?;
        }
        for i in 0..size {
            cluster.wait_healthy(i)?;
        }
        Ok(cluster)
    }

    /// Starts member `i`'s process. On a restart etcd finds its data directory and ignores the
    /// bootstrap flags.
    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let log_path = self.log_path(i);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let log_err = log.try_clone().map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let member = &self.members[i];
        let client_url = format!("http://127.0.0.1:{}", member.client_port);
        let peer_url = format!("http://127.0.0.1:{}", member.peer_port);
        let mut command = Command::new(&self.binary);
        command
            .arg("--name")
            .arg(&member.name)
            .arg("--data-dir")
            .arg(self.dir.path().join(format!("{}.data", member.name)))
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(&self.initial_cluster)
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg(format!("tern-test-{}", std::process::id()))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        if let Some(arch) = unsupported_go_arch() {
            command.env("ETCD_UNSUPPORTED_ARCH", arch);
        }
        let child = command.spawn().map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        self.members[i].child = Some(child);
        Ok(())
    }

    /// Polls member `i`'s `/health` until it is healthy, it exits, or [`START_TIMEOUT`] passes.
    fn wait_healthy(&mut self, i: usize) -> Result<(), Failure> {
        let deadline = Instant::now() + START_TIMEOUT;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.members[i].client_port));
        let log_path = self.log_path(i);
        loop {
            if health_ok(address) {
                return Ok(());
            }
            let Member { name, child, .. } = &mut self.members[i];
            let Some(child) = child.as_mut() else {
                return Err(Failure::Fatal(format!("etcd member {name} is not running")));
            };
            if let Some(failure) = exited(child, &format!("etcd member {name}"), &log_path) {
                return Err(failure);
            }
            if Instant::now() >= deadline {
                // Drop kills the children.
                return Err(Failure::Fatal(format!(
                    "etcd member {name} not healthy within {START_TIMEOUT:?}; log:\n{}",
                    log_tail(&log_path)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.members[i].name))
    }

    /// How many members the cluster has (running or not).
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// Member `i`'s client address, "127.0.0.1:PORT".
    pub fn endpoint(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].client_port)
    }

    /// Every member's client address, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// Member `i`'s name ("m1", ...).
    pub fn name(&self, i: usize) -> &str {
        &self.members[i].name
    }

    /// Member `i`'s process id, if it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    /// Kills member `i` with SIGKILL (through its handle: that process only) and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed member `i` again on its data and ports, and waits until it is healthy.
    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        if self.members[i].child.is_some() {
            return Err(format!("etcd member {} is running", self.members[i].name));
        }
        self.spawn(i)?;
        self.wait_healthy(i).map_err(|failure| match failure {
            Failure::PortTaken(e) | Failure::Fatal(e) => e,
        })
    }

    /// The member each running member of `among` says is the leader, once they all agree on one
    /// (other than `not`, a member id): its index and member id. Polls until `patience` ends.
    pub async fn agreed_leader(
        &self,
        among: &[usize],
        not: Option<u64>,
        patience: Duration,
    ) -> Result<(usize, u64), String> {
        let deadline = Instant::now() + patience;
        loop {
            let mut ids = Vec::new();
            let mut leaders = Vec::new();
            for &i in among {
                if let Some((id, leader)) = status(&self.endpoint(i)).await {
                    ids.push((i, id));
                    leaders.push(leader);
                }
            }
            let agreed = leaders.len() == among.len()
                && leaders.iter().all(|&l| l == leaders[0] && l != 0 && Some(l) != not);
            if agreed {
                if let Some(&(i, id)) = ids.iter().find(|(_, id)| *id == leaders[0]) {
                    return Ok((i, id));
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("etcd members {among:?} agree on no leader within {patience:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines of member `i`'s log, for failure messages.
    pub fn log(&self, i: usize) -> String {
        log_tail(&self.log_path(i))
    }
}

/// A member's own id and the leader it follows (0: none), if it answers.
async fn status(endpoint: &str) -> Option<(u64, u64)> {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_timeout(Duration::from_secs(2));
    let mut client = etcd_client::Client::connect([endpoint], Some(options)).await.ok()?;
    let status = tokio::time::timeout(Duration::from_secs(3), client.status()).await.ok()?.ok()?;
    Some((status.header()?.member_id(), status.leader()))
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
