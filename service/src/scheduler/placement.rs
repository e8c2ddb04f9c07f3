//! The placement decision, as a pure function: which instance of the
//! project gets a container, or whether a new one must be booted.
//!
//! Best fit by memory: among the project's instances that accept
//! containers and have room (vCPU, memory, the container's host ports
//! free), the one with the least free memory left after placing it. That
//! packs containers onto the fewest instances. Booting instances count:
//! their capacity is already paid for, so twenty concurrent creates wait
//! for one boot instead of causing twenty.

use std::collections::HashSet;

use crate::domain::{InstanceId, InstanceStatus, PortProtocol};

/// What a container needs from an instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Demand {
    /// vCPUs.
    pub cpu: f64,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// Host ports it publishes.
    pub ports: Vec<(PortProtocol, u16)>,
}

/// One instance of the project, with what is already booked on it.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The instance.
    pub id: InstanceId,
    /// Its status; only `Booting` and `Ready` take containers.
    pub status: InstanceStatus,
    /// vCPUs it offers.
    pub vcpus: f64,
    /// Memory it offers, MiB.
    pub memory_mib: u64,
    /// vCPUs booked by its containers.
    pub cpu_used: f64,
    /// Memory booked by its containers, MiB.
    pub memory_used_mib: u64,
    /// Host ports booked by its containers.
    pub ports_used: HashSet<(PortProtocol, u16)>,
}

impl Candidate {
    fn free_memory(&self) -> u64 {
        self.memory_mib.saturating_sub(self.memory_used_mib)
    }

    /// Whether `demand` fits on this instance now.
    pub fn fits(&self, demand: &Demand) -> bool {
        // A little slack so that 0.1 + 0.2 style sums don't refuse an exact fit.
        const EPSILON: f64 = 1e-9;
        self.status.accepts_containers()
            && self.cpu_used + demand.cpu <= self.vcpus + EPSILON
            && demand.memory_mib <= self.free_memory()
            && demand.ports.iter().all(|p| !self.ports_used.contains(p))
    }
}

/// Where a container goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Placement {
    /// Bind it to this existing instance.
    Existing(InstanceId),
    /// No instance has room: boot one.
    Boot,
    /// It cannot fit even an empty instance of the configured size.
    TooBig,
}

/// Chooses an instance for `demand` among `candidates`; an empty instance
/// offers `empty_vcpus` and `empty_memory_mib`.
pub fn place(
    demand: &Demand,
    candidates: &[Candidate],
    empty_vcpus: f64,
    empty_memory_mib: u64,
) -> Placement {
    let best = candidates
        .iter()
        .filter(|c| c.fits(demand))
        // Ready before Booting at equal fit: it runs sooner.
        .min_by_key(|c| {
            (
                c.free_memory() - demand.memory_mib,
                c.status != InstanceStatus::Ready,
                c.id.clone(),
            )
        });
    match best {
        Some(c) => Placement::Existing(c.id.clone()),
        None if demand.cpu <= empty_vcpus && demand.memory_mib <= empty_memory_mib => {
            Placement::Boot
        }
        None => Placement::TooBig,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: &str, status: InstanceStatus, memory_used_mib: u64) -> Candidate {
        Candidate {
            id: InstanceId::parse(id).expect("id"),
            status,
            vcpus: 2.0,
            memory_mib: 2048,
            cpu_used: 0.0,
            memory_used_mib,
            ports_used: HashSet::new(),
        }
    }

    fn demand(memory_mib: u64) -> Demand {
        Demand {
            cpu: 0.1,
            memory_mib,
            ports: vec![],
        }
    }

    #[test]
    fn best_fit_by_memory_packs_the_fullest_instance_first() {
        let candidates = [
            candidate("a", InstanceStatus::Ready, 0),
            candidate("b", InstanceStatus::Ready, 1536),
            candidate("c", InstanceStatus::Ready, 1024),
        ];
        assert_eq!(
            place(&demand(256), &candidates, 2.0, 2048),
            Placement::Existing(InstanceId::parse("b").expect("id"))
        );
        // 600 MiB only fits a and c; c is fuller.
        assert_eq!(
            place(&demand(600), &candidates, 2.0, 2048),
            Placement::Existing(InstanceId::parse("c").expect("id"))
        );
    }

    #[test]
    fn booting_instances_take_containers_but_retiring_ones_do_not() {
        let candidates = [candidate("boot", InstanceStatus::Booting, 0)];
        assert!(matches!(
            place(&demand(128), &candidates, 2.0, 2048),
            Placement::Existing(_)
        ));
        let candidates = [
            candidate("old", InstanceStatus::Retiring, 0),
            candidate("bad", InstanceStatus::Error, 0),
            candidate("gone", InstanceStatus::Unreachable, 0),
        ];
        assert_eq!(place(&demand(128), &candidates, 2.0, 2048), Placement::Boot);
    }

    #[test]
    fn a_taken_host_port_or_full_cpu_rules_an_instance_out() {
        let mut taken = candidate("a", InstanceStatus::Ready, 0);
        taken.ports_used.insert((PortProtocol::Tcp, 8080));
        let mut busy = candidate("b", InstanceStatus::Ready, 0);
        busy.cpu_used = 1.95;
        let with_port = Demand {
            cpu: 0.1,
            memory_mib: 64,
            ports: vec![(PortProtocol::Tcp, 8080)],
        };
        assert_eq!(
            place(&with_port, &[taken.clone(), busy], 2.0, 2048),
            Placement::Boot
        );
        // The same port over UDP is a different booking.
        let udp = Demand {
            ports: vec![(PortProtocol::Udp, 8080)],
            ..with_port
        };
        assert_eq!(
            place(&udp, &[taken], 2.0, 2048),
            Placement::Existing(InstanceId::parse("a").expect("id"))
        );
    }

    #[test]
    fn a_container_larger_than_any_instance_is_refused() {
        assert_eq!(place(&demand(4096), &[], 2.0, 2048), Placement::TooBig);
        let huge_cpu = Demand {
            cpu: 3.0,
            memory_mib: 64,
            ports: vec![],
        };
        assert_eq!(place(&huge_cpu, &[], 2.0, 2048), Placement::TooBig);
    }

    #[test]
    fn twenty_small_containers_fill_instances_before_booting_more() {
        let mut instances: Vec<Candidate> = Vec::new();
        let mut boots = 0;
        for _ in 0..20 {
            let d = demand(256);
            match place(&d, &instances, 2.0, 2048) {
                Placement::Existing(id) => {
                    let c = instances
                        .iter_mut()
                        .find(|c| c.id == id)
                        .expect("placed on a known instance");
                    c.memory_used_mib += d.memory_mib;
                    c.cpu_used += d.cpu;
                }
                Placement::Boot => {
                    boots += 1;
                    let mut c = candidate(&format!("i{boots}"), InstanceStatus::Booting, 0);
                    c.memory_used_mib = d.memory_mib;
                    c.cpu_used = d.cpu;
                    instances.push(c);
                }
                Placement::TooBig => panic!("fits"),
            }
        }
        // 8 × 256 MiB per 2 GiB instance: 20 containers need 3.
        assert_eq!(boots, 3);
    }
}
