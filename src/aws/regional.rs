//! One SDK client per AWS region, built on first use from one base configuration and then
//! reused by every invocation of a warm container. Knows nothing of which service it serves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_ec2::config::Region;

/// The clients of one service, by region name.
pub(crate) struct PerRegion<C> {
    build: Arc<dyn Fn(Region) -> C + Send + Sync>,
    clients: Arc<Mutex<HashMap<String, C>>>,
}

impl<C> Clone for PerRegion<C> {
    fn clone(&self) -> Self {
        Self {
            build: Arc::clone(&self.build),
            clients: Arc::clone(&self.clients),
        }
    }
}

impl<C: Clone> PerRegion<C> {
    /// `build` makes the client of one region (the base configuration with that region).
    pub(crate) fn new(build: impl Fn(Region) -> C + Send + Sync + 'static) -> Self {
        Self {
            build: Arc::new(build),
            clients: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The region's client; the caller has checked that `region` is a region name.
    pub(crate) fn get(&self, region: &str) -> C {
        // A poisoned lock only means another task panicked while inserting; the map is intact.
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(region.to_owned())
            .or_insert_with(|| (self.build)(Region::new(region.to_owned())))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn builds_one_client_per_region_and_shares_it_between_clones() {
        let built = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&built);
        let clients = PerRegion::new(move |region: Region| {
            counter.fetch_add(1, Ordering::SeqCst);
            region.as_ref().to_owned()
        });
        let copy = clients.clone();
        assert_eq!(clients.get("us-east-1"), "us-east-1");
        assert_eq!(copy.get("us-east-1"), "us-east-1");
        assert_eq!(copy.get("eu-west-1"), "eu-west-1");
        assert_eq!(built.load(Ordering::SeqCst), 2);
    }
}
