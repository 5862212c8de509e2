//! Updraft's control plane on AWS: one thin Lambda binary per function over
//! handlers here, which call `core` and the adapters of `updraft-aws`: the
//! HTTPS API (registration and queries of the registry) and the health function;
//! the node and status functions are placeholders until cloud execution.

pub mod api;
pub mod health;
pub mod launch;
pub mod node;
pub mod placeholder;
pub mod provision;
