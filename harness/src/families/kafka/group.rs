//! A consumer group reading while the load runs: every member records what it receives, and
//! every rebalance (partitions revoked, assigned) goes into the history as a probe event, so
//! the time a fault costs the group is visible. After the heal the group keeps reading until
//! every partition has been consumed to the end offsets asked for then (by offsets, not by
//! waiting for silence).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{ClientContext, TopicPartitionList};

use super::config::{ConsumerGroup, KafkaWorkload};
use super::driver::{self, base_config};
use crate::families::{BrokerError, DrainReport};
use crate::history::{Clock, HistorySink, Kind, Probe, ProbeKind, Record};

/// What the members share: the next offset to read per partition (the furthest any member
/// got), who holds which partition, and the rebalances seen.
#[derive(Default)]
pub struct GroupState {
    next: BTreeMap<i32, i64>,
    assigned: BTreeMap<String, Vec<i32>>,
    /// (member, t_us revoked) waiting for the next assignment.
    revoked_at: BTreeMap<String, u64>,
    rebalances: u64,
    /// Longest time a member held no partitions between a revocation and the next assignment.
    longest_gap_us: u64,
    errors: BTreeMap<String, u64>,
    /// When the group last received a record, and the longest pause between two receives
    /// (with when it began), while the load ran and after.
    last_receive_us: Option<u64>,
    /// Pauses longer than `PAUSE_US` between two receives: (began at, lasted).
    pauses: Vec<(u64, u64)>,
    pub order: driver::Order,
    pub report: DrainReport,
}

pub type Shared = Arc<Mutex<GroupState>>;

/// The history, until the group stops: the harness closes the history only once every
/// sender is gone, and a member being closed on its own thread must not hold it open.
type History = Arc<Mutex<Option<HistorySink>>>;

struct MemberContext {
    member: String,
    state: Shared,
    history: History,
    clock: Clock,
}

impl ClientContext for MemberContext {}

fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

impl ConsumerContext for MemberContext {
    fn post_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let t_us = self.clock.now_us();
        let (event, detail) = match rebalance {
            Rebalance::Assign(tpl) => ("assigned", format!("{:?}", partitions(tpl))),
            Rebalance::Revoke(tpl) => ("revoked", format!("{:?}", partitions(tpl))),
            Rebalance::Error(e) => ("rebalance-error", e.to_string()),
        };
        {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            match rebalance {
                Rebalance::Assign(tpl) => {
                    s.rebalances += 1;
                    s.assigned.insert(self.member.clone(), partitions(tpl));
                    if let Some(at) = s.revoked_at.remove(&self.member) {
                        s.longest_gap_us = s.longest_gap_us.max(t_us.saturating_sub(at));
                    }
                }
                Rebalance::Revoke(_) => {
                    s.assigned.insert(self.member.clone(), Vec::new());
                    s.revoked_at.insert(self.member.clone(), t_us);
                }
                Rebalance::Error(e) => *s.errors.entry(e.to_string()).or_default() += 1,
            }
        }
        let r = Record::Probe(Probe {
            kind: Kind::Info,
            t_done: t_us,
            observer: self.member.clone(),
            event: ProbeKind::Group(event.to_string()),
            subject: None,
            role: None,
            detail: Some(detail),
        });
        if let Some(h) = &*self.history.lock().unwrap_or_else(|e| e.into_inner()) {
            h.record(r);
        }
    }
}

/// A pause in what the group receives worth reporting (the load sends every few ms).
const PAUSE_US: u64 = 200_000;

pub fn member_client_id(index: u32) -> String {
    format!("faultline-member-{index}")
}

/// Holds a group member so that dropping it, which closes it (librdkafka leaves the group
/// and waits for the answer, as long as that takes), happens on a thread of its own that the
/// process does not wait for, never on one of the runtime's workers: with two cores, two
/// members closing there would stall every task, the signal handlers included.
struct CloseOffThread<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> std::ops::Deref for CloseOffThread<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_ref().expect("held until dropped")
    }
}

impl<T: Send + 'static> Drop for CloseOffThread<T> {
    fn drop(&mut self) {
        if let Some(member) = self.0.take() {
            let _ = std::thread::Builder::new()
                .name("kafka-group-close".into())
                .spawn(move || drop(member));
        }
    }
}

pub struct Group {
    pub state: Shared,
    history: History,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    members: Vec<Arc<StreamConsumer<MemberContext>>>,
}

impl Drop for Group {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(CloseOffThread(Some(std::mem::take(&mut self.members))));
    }
}

impl Group {
    /// Starts the members and returns once every partition is assigned to one of them.
    pub async fn start(
        bootstrap: &str,
        w: &KafkaWorkload,
        g: &ConsumerGroup,
        history: &HistorySink,
        clock: &Clock,
        timeout: Duration,
    ) -> Result<Group, BrokerError> {
        let state: Shared = Default::default();
        let mut tasks = Vec::new();
        let mut members = Vec::new();
        let shared_history: History = Arc::new(Mutex::new(Some(history.clone())));
        for i in 0..g.members {
            let member = format!("member-{i}");
            let mut c = base_config(bootstrap, &member_client_id(i));
            c.set("group.id", &g.group)
                .set("auto.offset.reset", "earliest")
                .set("isolation.level", driver::READ_ISOLATION)
                .set("enable.auto.commit", "true")
                .set("auto.commit.interval.ms", "1000");
            let ctx = MemberContext {
                member: member.clone(),
                state: state.clone(),
                history: shared_history.clone(),
                clock: *clock,
            };
            let consumer: Arc<StreamConsumer<MemberContext>> = Arc::new(
                c.create_with_context(ctx)
                    .map_err(|e| BrokerError(format!("create group member {member}: {e}")))?,
            );
            members.push(consumer.clone());
            consumer
                .subscribe(&[&w.topic])
                .map_err(|e| BrokerError(format!("{member} subscribes to {}: {e}", w.topic)))?;
            let (state, history, clock) = (state.clone(), shared_history.clone(), *clock);
            // The task may hold the last reference when it is aborted; closing happens off
            // the runtime's threads then too.
            let consumer = CloseOffThread(Some(consumer));
            tasks.push(tokio::spawn(async move {
                loop {
                    let failed = match consumer.recv().await {
                        Ok(m) => {
                            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                            let next = s.next.entry(m.partition()).or_default();
                            *next = (*next).max(m.offset() + 1);
                            let now = clock.now_us();
                            if let Some(last) = s.last_receive_us {
                                if now.saturating_sub(last) > PAUSE_US && s.pauses.len() < 20 {
                                    s.pauses.push((last, now - last));
                                }
                            }
                            s.last_receive_us = Some(now);
                            let GroupState { order, report, .. } = &mut *s;
                            let h = history.lock().unwrap_or_else(|e| e.into_inner());
                            let Some(history) = h.as_ref() else {
                                return;
                            };
                            driver::receive(
                                history,
                                &clock,
                                m.partition(),
                                m.offset(),
                                m.payload(),
                                Some(&member),
                                report,
                                order,
                            );
                            false
                        }
                        Err(e) => {
                            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                            *s.errors.entry(e.to_string()).or_default() += 1;
                            true
                        }
                    };
                    if failed {
                        // A broken connection reports once per attempt; do not spin on it.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }));
        }
        let group = Group {
            state,
            history: shared_history,
            tasks,
            members,
        };
        let deadline = Instant::now() + timeout;
        let partitions = w.partitions as usize;
        crate::families::wait_for(
            "every partition assigned to a group member",
            deadline,
            || async {
                let s = group.state.lock().unwrap_or_else(|e| e.into_inner());
                let held: usize = s.assigned.values().map(Vec::len).sum();
                if held >= partitions {
                    Ok(())
                } else {
                    Err(format!(
                        "{held} of {partitions} partitions assigned: {:?}",
                        s.assigned
                    ))
                }
            },
        )
        .await?;
        Ok(group)
    }

    /// Keeps reading until every partition is consumed to `ends`, or the deadline.
    pub async fn finish(&self, ends: &[i64], deadline: Instant) -> DrainReport {
        let done = |s: &GroupState| {
            ends.iter()
                .enumerate()
                .all(|(p, e)| s.next.get(&(p as i32)).copied().unwrap_or(0) >= *e)
        };
        while Instant::now() < deadline {
            if done(&self.state.lock().unwrap_or_else(|e| e.into_inner())) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let complete = done(&s);
        let mut report = std::mem::take(&mut s.report);
        report.complete = complete;
        report.notes.push(format!(
            "consumer group: {} member(s) read while the load ran and after the heal until every partition reached its end offset {:?}; {} assignment(s) in all, the longest a member held no partition between a revocation and its next assignment: {:.1} s",
            s.assigned.len(),
            ends,
            s.rebalances,
            s.longest_gap_us as f64 / 1e6
        ));
        let pauses: Vec<String> = s
            .pauses
            .iter()
            .map(|(at, gap)| {
                format!(
                    "{:.1} ms from {:.1} s",
                    *gap as f64 / 1000.0,
                    *at as f64 / 1e6
                )
            })
            .collect();
        report.notes.push(if pauses.is_empty() {
            format!(
                "consumer group: no pause over {} ms between two records received by the group",
                PAUSE_US / 1000
            )
        } else {
            format!(
                "consumer group: pauses over {} ms between two records received by the group (run time): {}",
                PAUSE_US / 1000,
                pauses.join(", ")
            )
        });
        if !complete {
            let behind: Vec<String> = ends
                .iter()
                .enumerate()
                .filter_map(|(p, e)| {
                    let n = s.next.get(&(p as i32)).copied().unwrap_or(0);
                    (n < *e).then(|| format!("partition {p} at {n} of {e}"))
                })
                .collect();
            report
                .notes
                .push(format!("drain incomplete: {}", behind.join(", ")));
        }
        if !s.errors.is_empty() {
            let errs: Vec<String> = s.errors.iter().map(|(k, n)| format!("{k} x{n}")).collect();
            report
                .notes
                .push(format!("consumer group errors: {}", errs.join("; ")));
        }
        report.notes.push(
            "duplicates from a group are expected at least once: after a rebalance a member re-reads from the last committed offset (auto commit every 1 s)"
                .into(),
        );
        driver::order_notes(&s.order, &mut report);
        report
    }
}
