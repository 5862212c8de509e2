//! Admission by resources: a task starts when this machine has the CPU and
//! memory it requests free, and fewer than `max_parallel` tasks run.

use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    pub cpu_millis: u64,
    pub memory_mib: u64,
    pub slots: usize,
}

impl Capacity {
    /// This machine: its CPUs and memory, and `max_parallel` (default: the CPU count... times 4,
    /// since most pipeline steps wait on I/O as much as they compute).
    pub fn of_this_machine(max_parallel: Option<usize>) -> Capacity {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Capacity {
            cpu_millis: cpus as u64 * 1000,
            memory_mib: total_memory_mib().unwrap_or(4096),
            slots: max_parallel.unwrap_or(cpus * 4).max(1),
        }
    }
}

fn total_memory_mib() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

struct Free {
    cpu_millis: u64,
    memory_mib: u64,
    slots: usize,
}

pub struct ResourcePool {
    capacity: Capacity,
    free: Mutex<Free>,
    released: Notify,
}

pub struct Permit {
    pool: Arc<ResourcePool>,
    cpu_millis: u64,
    memory_mib: u64,
}

impl ResourcePool {
    pub fn new(capacity: Capacity) -> Arc<ResourcePool> {
        Arc::new(ResourcePool {
            capacity,
            free: Mutex::new(Free {
                cpu_millis: capacity.cpu_millis,
                memory_mib: capacity.memory_mib,
                slots: capacity.slots,
            }),
            released: Notify::new(),
        })
    }

    /// Waits until the request fits. A request larger than the whole machine is
    /// reduced to the whole machine, so that it runs alone rather than never.
    pub async fn acquire(self: &Arc<Self>, cpu_millis: u64, memory_mib: u64) -> Permit {
        let cpu_millis = cpu_millis.min(self.capacity.cpu_millis);
        let memory_mib = memory_mib.min(self.capacity.memory_mib);
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Register before checking, so a release between the check and the wait is not lost.
            released.as_mut().enable();
            {
                let mut free = self.free.lock().expect("resource pool lock");
                if free.slots > 0 && free.cpu_millis >= cpu_millis && free.memory_mib >= memory_mib {
                    free.slots -= 1;
                    free.cpu_millis -= cpu_millis;
                    free.memory_mib -= memory_mib;
                    return Permit { pool: Arc::clone(self), cpu_millis, memory_mib };
                }
            }
            released.await;
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        {
            let mut free = self.pool.free.lock().expect("resource pool lock");
            free.slots += 1;
            free.cpu_millis += self.cpu_millis;
            free.memory_mib += self.memory_mib;
        }
        self.pool.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_two_cpu_task_takes_two_slots_worth_of_cpu() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let pool = ResourcePool::new(Capacity { cpu_millis: 2000, memory_mib: 1024, slots: 8 });
            let big = pool.acquire(2000, 100).await;
            let small = tokio::time::timeout(std::time::Duration::from_millis(50), pool.acquire(500, 100)).await;
            assert!(small.is_err(), "no CPU left while the 2-CPU task runs");
            drop(big);
            let _a = pool.acquire(1000, 100).await;
            let _b = pool.acquire(1000, 100).await;
            // Larger than the machine: clamped, so it waits for everything, then runs alone.
            let huge = tokio::time::timeout(std::time::Duration::from_millis(50), pool.acquire(64_000, 100)).await;
            assert!(huge.is_err());
        });
    }
}
