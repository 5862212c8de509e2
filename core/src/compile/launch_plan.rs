//! Launch plans: default and fixed inputs, schedules, kickoff input.

use super::*;

impl Compiler<'_> {
    pub(super) fn launch_plan(&mut self, name: &str, spec: &spec::LaunchPlanSpec) -> Option<LaunchPlanSpec> {
        let path = join("launch_plans", name);
        let errors_before = self.diags.len();
        self.check_name(&path, "launch plan", name);
        let workflow = match self.workflows.get(&spec.workflow) {
            Some(Some(w)) => w.template.clone().unwrap_or_default(),
            Some(None) => return None,
            None => {
                let hint = suggest(&spec.workflow, self.spec.workflows.keys()).map_or_else(
                    || format!("known workflows: {}", list(self.spec.workflows.keys())),
                    |s| format!("did you mean \"{s}\"?"),
                );
                self.error(join(&path, "workflow"), format!("unknown workflow \"{}\"", spec.workflow), hint);
                return None;
            }
        };
        let params: IndexMap<String, &Parameter> =
            workflow.inputs.iter().map(|p| (p.var.as_ref().map(|v| v.name.clone()).unwrap_or_default(), p)).collect();
        let literal_map = |c: &mut Self, section: &str, values: &IndexMap<String, Value>| -> LiteralMap {
            let mut out = BTreeMap::new();
            for (input, value) in values {
                let p = join(&join(&path, section), input);
                let Some(param) = params.get(input) else {
                    c.error(
                        &p,
                        format!("workflow {} has no input \"{input}\"", spec.workflow),
                        format!("its inputs are: {}", list(params.keys())),
                    );
                    continue;
                };
                let t = param.var.as_ref().and_then(|v| v.r#type.clone()).unwrap_or_default();
                match literal::from_json(&unescape(value), &t) {
                    Ok(l) => {
                        out.insert(input.clone(), l);
                    }
                    Err(e) => {
                        c.error(&p, format!("type mismatch: {e}"), format!("give a value of type {}", display(&t)))
                    }
                }
            }
            LiteralMap { values: out }
        };
        let default_inputs = literal_map(self, "default_inputs", &spec.default_inputs);
        let fixed_inputs = literal_map(self, "fixed_inputs", &spec.fixed_inputs);
        for input in spec.default_inputs.keys().filter(|k| spec.fixed_inputs.contains_key(*k)) {
            self.error(
                join(&join(&path, "fixed_inputs"), input),
                format!("\"{input}\" is both a default and a fixed input"),
                "a fixed input cannot be overridden, so it needs no default; keep one",
            );
        }

        let schedule = spec.schedule.as_ref().and_then(|s| self.schedule(&join(&path, "schedule"), s, &params, spec));
        if let Some(schedule) = &schedule {
            // A scheduled run has nobody to ask for missing inputs.
            for (input, param) in &params {
                let t = param.var.as_ref().and_then(|v| v.r#type.clone()).unwrap_or_default();
                let supplied = param.default.is_some()
                    || types::is_optional(&t)
                    || default_inputs.values.contains_key(input)
                    || fixed_inputs.values.contains_key(input)
                    || schedule.kickoff_time_input == *input;
                if !supplied {
                    self.error(
                        join(&path, "schedule"),
                        format!("scheduled runs would lack required input \"{input}\""),
                        "give it under default_inputs or fixed_inputs, or make it the kickoff_input (a datetime)",
                    );
                }
            }
        }
        if self.diags.len() > errors_before {
            return None;
        }
        Some(LaunchPlanSpec {
            id: Some(self.id(ResourceType::LaunchPlan, name)),
            workflow_id: workflow.id,
            default_inputs: Some(default_inputs),
            fixed_inputs: Some(fixed_inputs),
            schedule,
            // A scheduled plan fires only when asked to (registering the examples must not start a nightly job).
            active: spec.active.unwrap_or(spec.schedule.is_none()),
        })
    }

    pub(super) fn schedule(
        &mut self,
        path: &str,
        spec: &spec::ScheduleSpec,
        params: &IndexMap<String, &Parameter>,
        lp: &spec::LaunchPlanSpec,
    ) -> Option<Schedule> {
        let kind = match (&spec.cron, &spec.rate) {
            (Some(cron), None) => match sched::cron_schedule(cron, spec.timezone.as_deref()) {
                Ok(c) => schedule::Kind::Cron(c),
                Err(e) => {
                    let (field, hint) = if e.contains("time zone") {
                        ("timezone", "time zones are IANA names (tzdata), as EventBridge Scheduler takes them")
                    } else {
                        (
                            "cron",
                            "cron fields: minute hour day-of-month month day-of-week, e.g. \"0 3 * * *\"; or an alias such as @daily",
                        )
                    };
                    self.error(join(path, field), e, hint);
                    return None;
                }
            },
            (None, Some(rate)) => {
                if spec.timezone.is_some() {
                    self.error(join(path, "timezone"), "a fixed rate has no time zone", "remove timezone, or use cron");
                    return None;
                }
                match sched::parse_rate(rate) {
                    Ok(r) => schedule::Kind::Rate(r),
                    Err(e) => {
                        self.error(join(path, "rate"), e, "e.g. rate: 6h");
                        return None;
                    }
                }
            }
            _ => {
                self.error(
                    path,
                    "a schedule has exactly one of cron or rate",
                    "e.g. schedule: {cron: \"0 3 * * *\"} or schedule: {rate: 6h}",
                );
                return None;
            }
        };
        let kickoff = spec.kickoff_input.clone().unwrap_or_default();
        if !kickoff.is_empty() {
            let p = join(path, "kickoff_input");
            match params.get(&kickoff).and_then(|p| p.var.as_ref()).and_then(|v| v.r#type.as_ref()) {
                None => {
                    self.error(
                        &p,
                        format!("workflow {} has no input \"{kickoff}\"", lp.workflow),
                        "name a datetime input of the workflow, which receives each run's scheduled time",
                    );
                    return None;
                }
                Some(t) if !matches!(kind_of_simple(t), Some(crate::proto::core::SimpleType::Datetime)) => {
                    self.error(
                        &p,
                        format!("kickoff input \"{kickoff}\" is {}, not datetime", display(t)),
                        "declare the input as datetime",
                    );
                    return None;
                }
                Some(_) if lp.fixed_inputs.contains_key(&kickoff) => {
                    self.error(
                        &p,
                        format!("kickoff input \"{kickoff}\" is also a fixed input"),
                        "remove it from fixed_inputs; the scheduler sets it",
                    );
                    return None;
                }
                Some(_) => {}
            }
        }
        let catch_up = match &spec.catch_up {
            None => None,
            Some(value) => {
                let p = join(path, "catch_up");
                let catch_up = self.timeout(&p, value, "a tick")?;
                let seconds = catch_up.seconds + i64::from(catch_up.nanos > 0);
                if !(sched::MIN_CATCH_UP_SECONDS..=sched::MAX_CATCH_UP_SECONDS).contains(&seconds) {
                    self.error(
                        &p,
                        format!("catch_up {seconds} s is outside 1 minute to 24 hours"),
                        "EventBridge Scheduler retries a tick for 1 minute to 24 hours: e.g. catch_up: 1h",
                    );
                    return None;
                }
                Some(catch_up)
            }
        };
        Some(Schedule { kind: Some(kind), kickoff_time_input: kickoff, catch_up })
    }
}
