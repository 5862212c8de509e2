//! The GPUs a local run may hand out: found once per run, without linking any
//! GPU library. In order: `UPDRAFT_GPUS` (a device list such as `0,1`, or
//! `none`), then `CUDA_VISIBLE_DEVICES` if the caller already restricted the
//! devices, then `nvidia-smi` (names and memory), then the NVIDIA driver's files
//! under `/proc/driver/nvidia/gpus` (names). Each GPU task gets its own devices
//! through `CUDA_VISIBLE_DEVICES` and `NVIDIA_VISIBLE_DEVICES`; tasks without a
//! GPU request see none.

use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    /// The device as CUDA_VISIBLE_DEVICES names it (an index, or a `GPU-…` UUID).
    pub id: String,
    pub name: String,
    pub memory_mib: Option<u64>,
}

/// What this run may use, and where that came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpus {
    pub devices: Vec<Gpu>,
    pub source: &'static str,
}

impl Gpus {
    pub fn detect() -> Gpus {
        let var = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_string());
        if let Some(list) = var("UPDRAFT_GPUS") {
            return Gpus { devices: from_list(&list), source: "UPDRAFT_GPUS" };
        }
        if let Some(list) = var("CUDA_VISIBLE_DEVICES").filter(|l| !l.is_empty()) {
            return Gpus { devices: from_list(&list), source: "CUDA_VISIBLE_DEVICES" };
        }
        if let Some(devices) = nvidia_smi() {
            return Gpus { devices, source: "nvidia-smi" };
        }
        let devices = driver_files(Path::new("/proc/driver/nvidia/gpus"));
        let source = if devices.is_empty() { "no NVIDIA driver found" } else { "/proc/driver/nvidia" };
        Gpus { devices, source }
    }

    /// One line for the run header, `--help` and errors: `2 GPUs (0: NVIDIA H200, 139 GiB; 1: …) from nvidia-smi`.
    pub fn describe(&self) -> String {
        if self.devices.is_empty() {
            return format!("no GPUs ({})", self.source);
        }
        let each: Vec<String> = self
            .devices
            .iter()
            .map(|g| {
                let memory = g.memory_mib.map(|m| format!(", {} GiB", m.div_ceil(1024))).unwrap_or_default();
                if g.name.is_empty() { g.id.clone() } else { format!("{}: {}{memory}", g.id, g.name) }
            })
            .collect();
        let plural = if self.devices.len() == 1 { "" } else { "s" };
        format!("{} GPU{plural} ({}) from {}", self.devices.len(), each.join("; "), self.source)
    }
}

/// `0,1` or `GPU-8f…,GPU-3a…`; `none`, `void` or empty for no GPUs.
fn from_list(list: &str) -> Vec<Gpu> {
    if matches!(list.to_ascii_lowercase().as_str(), "" | "none" | "void" | "-1") {
        return Vec::new();
    }
    list.split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(|id| Gpu { id: id.to_string(), name: String::new(), memory_mib: None })
        .collect()
}

/// `nvidia-smi` when it is on PATH (run directly, no shell); `None` when absent or failing.
fn nvidia_smi() -> Option<Vec<Gpu>> {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("nvidia-smi").is_file()));
    if !on_path {
        return None;
    }
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status.success().then(|| parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout)))
}

/// `0, NVIDIA H200, 143771` per line.
fn parse_nvidia_smi(csv: &str) -> Vec<Gpu> {
    csv.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ',').map(str::trim);
            let id = fields.next().filter(|i| !i.is_empty())?.to_string();
            let name = fields.next().unwrap_or_default().to_string();
            let memory_mib = fields.next().and_then(|m| m.parse().ok());
            Some(Gpu { id, name, memory_mib })
        })
        .collect()
}

/// The driver's `information` file per GPU: `Model:` and `Device Minor:` lines.
fn driver_files(root: &Path) -> Vec<Gpu> {
    let Ok(entries) = std::fs::read_dir(root) else { return Vec::new() };
    let mut gpus: Vec<Gpu> = entries
        .flatten()
        .filter_map(|entry| {
            let info = std::fs::read_to_string(entry.path().join("information")).ok()?;
            let field = |key: &str| {
                info.lines().find_map(|l| l.strip_prefix(key).map(|v| v.trim_start_matches(':').trim().to_string()))
            };
            Some(Gpu { id: field("Device Minor")?, name: field("Model").unwrap_or_default(), memory_mib: None })
        })
        .collect();
    gpus.sort_by_key(|g| g.id.parse::<u32>().unwrap_or(u32::MAX));
    gpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lists_and_none() {
        assert_eq!(from_list("0,1").iter().map(|g| g.id.as_str()).collect::<Vec<_>>(), ["0", "1"]);
        assert!(from_list("none").is_empty() && from_list("").is_empty());
        let gpus = Gpus { devices: from_list("2, 3"), source: "UPDRAFT_GPUS" };
        assert_eq!(gpus.describe(), "2 GPUs (2; 3) from UPDRAFT_GPUS");
        assert_eq!(Gpus { devices: vec![], source: "UPDRAFT_GPUS" }.describe(), "no GPUs (UPDRAFT_GPUS)");
    }

    #[test]
    fn nvidia_smi_csv_is_read() {
        let gpus = parse_nvidia_smi("0, NVIDIA H200, 143771\n1, NVIDIA H200, 143771\n");
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[1], Gpu { id: "1".into(), name: "NVIDIA H200".into(), memory_mib: Some(143_771) });
        let described = Gpus { devices: gpus, source: "nvidia-smi" }.describe();
        assert_eq!(described, "2 GPUs (0: NVIDIA H200, 141 GiB; 1: NVIDIA H200, 141 GiB) from nvidia-smi");
    }

    #[test]
    fn the_drivers_files_are_read() {
        let root = std::env::temp_dir().join(format!("updraft-gpus-{}", std::process::id()));
        for (bus, minor) in [("0000:41:00.0", 1), ("0000:01:00.0", 0)] {
            std::fs::create_dir_all(root.join(bus)).unwrap();
            let info = format!("Model: \t\t NVIDIA A100-SXM4-80GB\nIRQ:   \t\t 42\nDevice Minor: \t {minor}\n");
            std::fs::write(root.join(bus).join("information"), info).unwrap();
        }
        let gpus = driver_files(&root);
        assert_eq!(
            gpus.iter().map(|g| (g.id.as_str(), g.name.as_str())).collect::<Vec<_>>(),
            [("0", "NVIDIA A100-SXM4-80GB"), ("1", "NVIDIA A100-SXM4-80GB")]
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
