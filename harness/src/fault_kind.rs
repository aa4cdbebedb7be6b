//! The fault vocabulary every layer shares: the kinds of fault a scenario can name, and what
//! each kind is (a topology change, a network fault, one that heals itself). What a kind does
//! and which settings it reads live in `faults/<kind>.rs`.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Send a signal to the nodes' main process (SIGKILL by default); heal starts them again.
    /// With several targets (`all`, `majority`) they are killed together: a coordinated crash.
    Kill,
    /// Freeze every process of the nodes (cgroup freezer); heal thaws them.
    Pause,
    /// SIGSTOP to the main process; heal sends SIGCONT.
    Stop,
    /// Stop the nodes gracefully and start them again; it heals itself.
    Restart,
    /// Restart every target node in turn, waiting for the cluster's health between nodes.
    RollingRestart,
    /// Cut links between nodes (iptables in each node's network namespace).
    Partition,
    /// Drop a share of the packets the target nodes send.
    Loss,
    /// Limit the target nodes' outgoing bandwidth (tc tbf).
    Bandwidth,
    /// Hold the target nodes' packets for a delay (± jitter) before they go on (NFQUEUE and a
    /// program of faultline's own: no netem needed).
    Delay,
    /// Hold back a share of the target nodes' packets so later ones overtake them (NFQUEUE).
    Reorder,
    /// Send a share of the target nodes' packets twice (NFQUEUE).
    Duplicate,
    /// Flip one bit in a share of the target nodes' packets (NFQUEUE).
    Corrupt,
    /// Fill the size-limited filesystem holding the target's data directory; heal frees it.
    DiskFull,
    /// Start spare nodes and wait until the cluster reports them joined.
    ScaleOut,
    /// Stop member nodes and remove them from the cluster's membership, waiting until the
    /// cluster reports them gone (and their data re-placed).
    ScaleIn,
    /// Shift the nodes' wall clock by an offset (libfaketime in images faultline builds);
    /// heal sets it back.
    ClockSkew,
    /// Cut the nodes' power: what they had not fsynced is lost (faultline's durability
    /// layer) and they stop at once; heal starts them again.
    PowerLoss,
    /// Flip random bits in a stopped node's data files, then start it; it heals itself.
    CorruptFile,
    /// Cut the end off a stopped node's data files, then start it; it heals itself.
    TruncateFile,
}

impl FaultKind {
    pub const NAMES: &'static [&'static str] = &[
        "kill",
        "pause",
        "stop",
        "restart",
        "rolling-restart",
        "partition",
        "loss",
        "bandwidth",
        "delay",
        "reorder",
        "duplicate",
        "corrupt",
        "disk-full",
        "scale-out",
        "scale-in",
        "clock-skew",
        "power-loss",
        "corrupt-file",
        "truncate-file",
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Stop => "stop",
            FaultKind::Restart => "restart",
            FaultKind::RollingRestart => "rolling-restart",
            FaultKind::Partition => "partition",
            FaultKind::Loss => "loss",
            FaultKind::Bandwidth => "bandwidth",
            FaultKind::Delay => "delay",
            FaultKind::Reorder => "reorder",
            FaultKind::Duplicate => "duplicate",
            FaultKind::Corrupt => "corrupt",
            FaultKind::DiskFull => "disk-full",
            FaultKind::ScaleOut => "scale-out",
            FaultKind::ScaleIn => "scale-in",
            FaultKind::ClockSkew => "clock-skew",
            FaultKind::PowerLoss => "power-loss",
            FaultKind::CorruptFile => "corrupt-file",
            FaultKind::TruncateFile => "truncate-file",
        }
    }

    pub const ALL: &'static [FaultKind] = &[
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Stop,
        FaultKind::Restart,
        FaultKind::RollingRestart,
        FaultKind::Partition,
        FaultKind::Loss,
        FaultKind::Bandwidth,
        FaultKind::Delay,
        FaultKind::Reorder,
        FaultKind::Duplicate,
        FaultKind::Corrupt,
        FaultKind::DiskFull,
        FaultKind::ScaleOut,
        FaultKind::ScaleIn,
        FaultKind::ClockSkew,
        FaultKind::PowerLoss,
        FaultKind::CorruptFile,
        FaultKind::TruncateFile,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// Topology changes: they settle by themselves once the cluster reports the change.
    pub fn is_topology_change(self) -> bool {
        matches!(self, FaultKind::ScaleOut | FaultKind::ScaleIn)
    }

    /// Faults that act from a sidecar and need the tools image.
    pub fn needs_tools(self) -> bool {
        self.is_network() || self == FaultKind::DiskFull
    }

    /// Faults that change the network from a sidecar (and need the tools image).
    pub fn is_network(self) -> bool {
        matches!(
            self,
            FaultKind::Partition
                | FaultKind::Loss
                | FaultKind::Bandwidth
                | FaultKind::Delay
                | FaultKind::Reorder
                | FaultKind::Duplicate
                | FaultKind::Corrupt
        )
    }

    /// Faults whose `for` means something (the others heal themselves).
    pub fn takes_duration(self) -> bool {
        !matches!(
            self,
            FaultKind::Restart
                | FaultKind::RollingRestart
                | FaultKind::ScaleOut
                | FaultKind::ScaleIn
                | FaultKind::CorruptFile
                | FaultKind::TruncateFile
        )
    }
}
