//! What one project's tasks may reach in the data bucket, and nothing more.
//!
//! Every project gets its own job role, `<prefix>-job-<project>`, made by the API
//! at the project's registrations (`Resource::JobRole` of a registration's plan)
//! under the stack's permissions boundary, which no role it makes can exceed. Its
//! policy ([`job_role_policy`]) lets a task write only under its project's run
//! prefix and read only its project's runs, inputs and code bundles; it never
//! reaches `specs/` (registered bodies) or another project's data. Chosen over
//! session tags because a Batch job's container credentials are the ECS task
//! role's, which carry no per-job tags to scope by.
//!
//! The bucket's layout by project (see docs/security.md):
//! `runs/<project>/…` (attempts' outputs), `inputs/<project>/…` (files given at
//! launch), `bundles/<project>/…` (code bundles), `specs/…` (the registry's).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The name of the inline policy a project's job role holds.
pub const JOB_ROLE_POLICY_NAME: &str = "project-data";
/// IAM role names hold at most 64 characters.
const MAX_ROLE_NAME: usize = 64;

/// Who may assume a job role: ECS, on behalf of a Batch job's container.
pub const JOB_ROLE_TRUST_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// Where a project's runs write: `runs/<project>/`.
pub fn runs_prefix(project: &str) -> String {
    format!("runs/{project}/")
}

/// Where `updraft launch` uploads a project's local input files: `inputs/<project>/`.
pub fn inputs_prefix(project: &str) -> String {
    format!("inputs/{project}/")
}

/// Where `updraft register` uploads a project's code bundles: `bundles/<project>/`.
pub fn bundles_prefix(project: &str) -> String {
    format!("bundles/{project}/")
}

/// `<prefix>-job-<project>`; a name too long for IAM keeps its start and ends
/// in a digest of the project, so distinct projects keep distinct roles.
pub fn job_role_name(name_prefix: &str, project: &str) -> String {
    let name = format!("{name_prefix}-job-{project}");
    if name.len() <= MAX_ROLE_NAME {
        return name;
    }
    let digest = hex::encode(Sha256::digest(project.as_bytes()));
    format!("{}-{}", &name[..MAX_ROLE_NAME - 9], &digest[..8])
}

/// The job role's inline policy: read and write the project's runs, read its
/// inputs and code bundles, list only those prefixes. The stack's permissions
/// boundary caps it again (the bucket's `runs/`, `inputs/`, `bundles/`).
pub fn job_role_policy(partition: &str, bucket: &str, project: &str) -> Value {
    let object = |prefix: String| format!("arn:{partition}:s3:::{bucket}/{prefix}*");
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ProjectRuns",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": object(runs_prefix(project)),
            },
            {
                "Sid": "ProjectInputsAndCode",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": [object(inputs_prefix(project)), object(bundles_prefix(project))],
            },
            {
                "Sid": "ListProjectData",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": format!("arn:{partition}:s3:::{bucket}"),
                "Condition": {"StringLike": {"s3:prefix": [
                    format!("{}*", runs_prefix(project)),
                    format!("{}*", inputs_prefix(project)),
                ]}},
            },
        ],
    })
}

/// Whether an object named by `uri` is data `project`'s tasks can read: in
/// the stack's `bucket`, under the project's runs or inputs. A value pointing
/// anywhere else (another project's runs, `specs/`, another bucket) is not
/// something a node of `project` may record or a cache entry may serve to it.
pub fn readable_by(project: &str, bucket: &str, uri: &str) -> bool {
    let Some(rest) = uri.strip_prefix("s3://") else { return false };
    let Some((uri_bucket, key)) = rest.split_once('/') else { return false };
    // `..` has no meaning to S3, but a reader that normalised paths could be fooled.
    uri_bucket == bucket
        && !key.split('/').any(|part| part == "..")
        && (key.starts_with(&runs_prefix(project)) || key.starts_with(&inputs_prefix(project)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_fit_iam_and_stay_distinct() {
        assert_eq!(job_role_name("updraft", "ml-team"), "updraft-job-ml-team");
        let long_a = job_role_name("updraft", &format!("{}a", "p".repeat(120)));
        let long_b = job_role_name("updraft", &format!("{}b", "p".repeat(120)));
        assert_eq!((long_a.len(), long_b.len()), (64, 64));
        assert_ne!(long_a, long_b);
    }

    #[test]
    fn the_policy_names_only_the_projects_prefixes() {
        let policy = job_role_policy("aws", "data", "ml-team").to_string();
        assert!(policy.contains("arn:aws:s3:::data/runs/ml-team/*"), "{policy}");
        assert!(policy.contains("arn:aws:s3:::data/bundles/ml-team/*"), "{policy}");
        assert!(!policy.contains("specs/") && !policy.contains("\"arn:aws:s3:::data/*\""), "{policy}");
    }

    #[test]
    fn a_project_reads_its_own_runs_and_inputs_only() {
        assert!(readable_by("a", "data", "s3://data/runs/a/development/r1/fit/1/outputs/model"));
        assert!(readable_by("a", "data", "s3://data/inputs/a/sha256/ab"));
        for foreign in [
            "s3://data/runs/b/development/r1/fit/1/outputs/model",
            "s3://data/runs/ab/development/r1/fit/1/outputs/model",
            "s3://data/specs/ab.json",
            "s3://data/runs/a/../b/development/r1/fit/1/outputs.json",
            "s3://other/runs/a/x",
            "/etc/passwd",
            "s3://data",
        ] {
            assert!(!readable_by("a", "data", foreign), "{foreign}");
        }
    }
}
