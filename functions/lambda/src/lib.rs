//! Updraft's control plane on AWS: one thin Lambda binary per function over
//! handlers here, which call `core` and the adapters of `updraft-aws`. So far:
//! turning API requests into calls on `core` and `core`'s answers into HTTP
//! responses, and the health function.

pub mod api;
pub mod health;
pub mod placeholder;
