//! Updraft's control plane on AWS: one thin Lambda binary per function over
//! handlers here, which call `core` and the adapters of `updraft-aws`: the
//! HTTPS API (`api`: registry, launch, runs, cache; with `provision` and
//! `launch`), the node function (`node`: the node protocol of cloud runs) and the
//! health function, and the status function (`stop`: runs stopped from outside).

pub mod api;
pub mod health;
pub mod launch;
pub mod node;
pub mod provision;
pub mod reconcile;
pub mod stop;

/// A setting of a function from the variable the template sets on it; missing, an
/// error naming the variable and the function (`api`, `node`).
pub fn required_env(name: &str, function: &str) -> Result<String, String> {
    std::env::var(name)
        .map_err(|_| format!("{name} is not set (infra/template.yaml sets it on the {function} function)"))
}
