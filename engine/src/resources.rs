//! Admission by resources: a task starts when this machine has the CPU,
//! memory and GPUs it requests free, and fewer than `max_parallel` tasks run.
//! CPU and memory are amounts; GPUs are devices, each held by one task at a time.

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
    /// Device ids not held by any task, in the order found.
    gpus: Vec<String>,
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
    /// The GPUs this holder may use, its own until the permit is dropped.
    pub gpus: Vec<String>,
}

impl ResourcePool {
    /// A pool of this capacity and these GPU devices.
    pub fn new(capacity: Capacity, gpus: Vec<String>) -> Arc<ResourcePool> {
        Arc::new(ResourcePool {
            capacity,
            free: Mutex::new(Free {
                cpu_millis: capacity.cpu_millis,
                memory_mib: capacity.memory_mib,
                slots: capacity.slots,
                gpus,
            }),
            released: Notify::new(),
        })
    }

    /// Waits until the request fits. A CPU or memory request larger than the
    /// whole machine is reduced to the whole machine, so that it runs alone rather
    /// than never; a GPU request larger than the devices is refused before the run
    /// starts (`updraft run` checks), so it is never waited for here.
    pub async fn acquire(self: &Arc<Self>, cpu_millis: u64, memory_mib: u64, gpus: usize) -> Permit {
        let cpu_millis = cpu_millis.min(self.capacity.cpu_millis);
        let memory_mib = memory_mib.min(self.capacity.memory_mib);
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Register before checking, so a release between the check and the wait is not lost.
            released.as_mut().enable();
            {
                let mut free = self.free.lock().expect("resource pool lock");
                if free.slots > 0
                    && free.cpu_millis >= cpu_millis
                    && free.memory_mib >= memory_mib
                    && free.gpus.len() >= gpus
                {
                    free.slots -= 1;
                    free.cpu_millis -= cpu_millis;
                    free.memory_mib -= memory_mib;
                    let held = free.gpus.drain(..gpus).collect();
                    return Permit { pool: Arc::clone(self), cpu_millis, memory_mib, gpus: held };
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
            free.gpus.append(&mut self.gpus);
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
            let pool = ResourcePool::new(Capacity { cpu_millis: 2000, memory_mib: 1024, slots: 8 }, Vec::new());
            let big = pool.acquire(2000, 100, 0).await;
            let small = tokio::time::timeout(std::time::Duration::from_millis(50), pool.acquire(500, 100, 0)).await;
            assert!(small.is_err(), "no CPU left while the 2-CPU task runs");
            drop(big);
            let _a = pool.acquire(1000, 100, 0).await;
            let _b = pool.acquire(1000, 100, 0).await;
            // Larger than the machine: clamped, so it waits for everything, then runs alone.
            let huge = tokio::time::timeout(std::time::Duration::from_millis(50), pool.acquire(64_000, 100, 0)).await;
            assert!(huge.is_err());
        });
    }

    #[test]
    fn gpus_are_held_by_one_task_at_a_time_and_come_back() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let capacity = Capacity { cpu_millis: 64_000, memory_mib: 64_000, slots: 8 };
            let pool = ResourcePool::new(capacity, vec!["0".into(), "1".into()]);
            let a = pool.acquire(100, 100, 1).await;
            let b = pool.acquire(100, 100, 1).await;
            assert_ne!(a.gpus, b.gpus, "distinct devices");
            let third = tokio::time::timeout(std::time::Duration::from_millis(50), pool.acquire(100, 100, 1)).await;
            assert!(third.is_err(), "both devices are held");
            let cpu_only = pool.acquire(100, 100, 0).await;
            assert!(cpu_only.gpus.is_empty(), "a CPU task is not held up by GPUs and gets none");
            let freed = a.gpus.clone();
            drop(a);
            let c = pool.acquire(100, 100, 1).await;
            assert_eq!(c.gpus, freed, "a released device is handed out again");
            drop((b, c));
            assert_eq!(pool.acquire(100, 100, 2).await.gpus.len(), 2);
        });
    }
}
