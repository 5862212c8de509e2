//! Updraft's control plane on AWS: one thin Lambda binary per function over
//! handlers here, which call `core` and the adapters of `updraft-aws`: the
//! HTTPS API (`api`: registry, launch, runs, cache; with `provision` and
//! `launch`), the node function (`node`: the node protocol of cloud runs) and the
//! health function; the status function is a placeholder (`placeholder`).

pub mod api;
pub mod health;
pub mod launch;
pub mod node;
pub mod placeholder;
pub mod provision;
