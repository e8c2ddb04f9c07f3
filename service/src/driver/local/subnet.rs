//! The host-only subnet of the `local` driver: parsing `a.b.c.d/len`, the
//! gateway (the host's address on the bridge), and instance addresses.
//!
//! Addresses are leased with one file per address under
//! `<state_dir>/leases/`, created exclusively and holding the instance id,
//! so two concurrent boots (even from two processes) never get the same
//! address, and a restarted service keeps every lease.

use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::domain::InstanceId;

/// Shortest prefix accepted: a /8 already offers more instances than one
/// machine runs.
const MIN_PREFIX: u8 = 8;
/// Longest prefix accepted: a /30 has a gateway and one instance.
const MAX_PREFIX: u8 = 30;

/// An IPv4 subnet: the bridge's gateway is its first address, instances get
/// the rest up to (not including) the broadcast address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Subnet {
    network: u32,
    prefix: u8,
}

impl Subnet {
    /// Parses `a.b.c.d/len`; the address must be the network's own (no host
    /// bits set).
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let (addr, prefix) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not a.b.c.d/len"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (MIN_PREFIX..=MAX_PREFIX).contains(p))
            .ok_or_else(|| {
                format!("prefix length {prefix:?} is not between {MIN_PREFIX} and {MAX_PREFIX}")
            })?;
        let network = u32::from(addr);
        if network & !Self::mask(prefix) != 0 {
            return Err(format!("{text} has host bits set"));
        }
        Ok(Self { network, prefix })
    }

    fn mask(prefix: u8) -> u32 {
        u32::MAX << (32 - u32::from(prefix))
    }

    /// The prefix length.
    pub(super) fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The host's address on the bridge: the subnet's first address.
    pub(super) fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }

    /// Every address an instance may get, lowest first.
    pub(super) fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let broadcast = self.network | !Self::mask(self.prefix);
        (self.network + 2..broadcast).map(Ipv4Addr::from)
    }

    /// Leases `addr` to `id`: `Ok(false)` when another instance holds it.
    /// Blocking.
    ///
    /// # Errors
    /// An I/O error, or `InvalidInput` when `addr` is not a host address
    /// of the subnet.
    pub(super) fn lease_exact(
        &self,
        leases: &Path,
        id: &InstanceId,
        addr: Ipv4Addr,
    ) -> io::Result<bool> {
        if !self.hosts().any(|a| a == addr) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{addr} is not a host address of the subnet"),
            ));
        }
        std::fs::create_dir_all(leases)?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(leases.join(addr.to_string()));
        match file {
            Ok(mut file) => {
                io::Write::write_all(&mut file, id.as_str().as_bytes())?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Leases the lowest free address to `id`; `None` when all are taken.
    /// Blocking.
    pub(super) fn lease(&self, leases: &Path, id: &InstanceId) -> io::Result<Option<Ipv4Addr>> {
        std::fs::create_dir_all(leases)?;
        for addr in self.hosts() {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(leases.join(addr.to_string()));
            match file {
                Ok(mut file) => {
                    io::Write::write_all(&mut file, id.as_str().as_bytes())?;
                    return Ok(Some(addr));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

/// Releases every lease held by `id` (normally one). Blocking; a missing
/// leases directory is fine.
pub(super) fn release(leases: &Path, id: &InstanceId) -> io::Result<()> {
    let entries = match std::fs::read_dir(leases) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let holder = match std::fs::read_to_string(&path) {
            Ok(holder) => holder,
            // Released concurrently: nothing to do.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if holder == id.as_str() {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(text: &str) -> Subnet {
        Subnet::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn default_subnet_has_gateway_dot_one_and_253_instances() {
        let s = subnet("10.247.0.0/24");
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 247, 0, 1));
        let hosts: Vec<Ipv4Addr> = s.hosts().collect();
        assert_eq!(hosts.len(), 253);
        assert_eq!(hosts.first(), Some(&Ipv4Addr::new(10, 247, 0, 2)));
        assert_eq!(hosts.last(), Some(&Ipv4Addr::new(10, 247, 0, 254)));
    }

    #[test]
    fn bad_subnets_are_refused() {
        for text in [
            "10.247.0.0",
            "10.247.0.1/24",
            "10.247.0.0/31",
            "10.0.0.0/4",
            "x/24",
            "10.247.0.0/x",
        ] {
            assert!(Subnet::parse(text).is_err(), "{text} accepted");
        }
    }

    #[test]
    fn leases_are_exclusive_and_released_by_holder() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = subnet("192.168.5.0/30");
        let a = InstanceId::parse("a").unwrap_or_else(|e| panic!("{e}"));
        let b = InstanceId::parse("b").unwrap_or_else(|e| panic!("{e}"));
        let first = s.lease(dir.path(), &a).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first, Some(Ipv4Addr::new(192, 168, 5, 2)));
        assert_eq!(s.lease(dir.path(), &b).ok(), Some(None), "the /30 is full");
        release(dir.path(), &b).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.lease(dir.path(), &b).ok(), Some(None), "b held nothing");
        release(dir.path(), &a).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.lease(dir.path(), &b).ok(), Some(first));
    }
}
